//! `PRIORITY_RULES`: which lane a captured request goes to, decided by
//! the operator's rules on its JSON body.
//!
//! A rule is `{"lane": L, "pointer": P, <op>: V}`: `P` an RFC 6901 JSON
//! Pointer, one operator of `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`,
//! `exists`. The first rule that matches decides. A value that is missing,
//! or of another type than the rule's (a string against `gt`, `"5"`
//! against `eq: 5`), does not match: a rule never matches by accident of
//! a client's formatting. Anything else in a rule stops start-up.

use serde_json::{Map, Value};

use super::Lane;

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Eq(Value),
    Ne(Value),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    In(Vec<Value>),
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub lane: Lane,
    pointer: String,
    test: Test,
}

const OPERATORS: [&str; 8] = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists"];

/// Parses the rules, or says which one is wrong and why.
pub fn parse(text: &str) -> Result<Vec<Rule>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Array(rules) = value else {
        return Err("must be a JSON array of rules".into());
    };
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(r).map_err(|e| format!("rule {} ({r}): {e}", i + 1)))
        .collect()
}

fn rule(v: &Value) -> Result<Rule, String> {
    let Value::Object(fields) = v else {
        return Err("must be an object".into());
    };
    if let Some(k) = fields
        .keys()
        .find(|k| !["lane", "pointer"].contains(&k.as_str()) && !OPERATORS.contains(&k.as_str()))
    {
        return Err(format!("unknown key {k:?}"));
    }
    let lane = match fields.get("lane").and_then(Value::as_str) {
        Some(name) => Lane::parse(name)?,
        None => return Err("needs a \"lane\"".into()),
    };
    let pointer = match fields.get("pointer").and_then(Value::as_str) {
        Some(p) if p.is_empty() || p.starts_with('/') => p.to_string(),
        Some(p) => return Err(format!("pointer {p:?} must start with / (RFC 6901)")),
        None => return Err("needs a \"pointer\"".into()),
    };
    Ok(Rule {
        lane,
        pointer,
        test: test(fields)?,
    })
}

fn test(fields: &Map<String, Value>) -> Result<Test, String> {
    let ops: Vec<(&String, &Value)> = fields
        .iter()
        .filter(|(k, _)| OPERATORS.contains(&k.as_str()))
        .collect();
    let [(op, v)] = ops[..] else {
        return Err(format!(
            "needs exactly one operator of {}",
            OPERATORS.join(", ")
        ));
    };
    let number = || {
        v.as_f64()
            .ok_or_else(|| format!("{op} needs a number, not {v}"))
    };
    Ok(match op.as_str() {
        "eq" => Test::Eq(v.clone()),
        "ne" => Test::Ne(v.clone()),
        "gt" => Test::Gt(number()?),
        "gte" => Test::Gte(number()?),
        "lt" => Test::Lt(number()?),
        "lte" => Test::Lte(number()?),
        "in" => match v {
            Value::Array(items) if !items.is_empty() => Test::In(items.clone()),
            _ => return Err(format!("in needs a non-empty array, not {v}")),
        },
        _ => match v {
            Value::Bool(b) => Test::Exists(*b),
            _ => return Err(format!("exists needs true or false, not {v}")),
        },
    })
}

/// Equal, and of one type (numbers compare by value: 1 equals 1.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

impl Rule {
    pub fn matches(&self, body: &Value) -> bool {
        let found = body.pointer(&self.pointer);
        let number = || found.and_then(Value::as_f64);
        match &self.test {
            Test::Exists(want) => found.is_some() == *want,
            Test::Eq(v) => found.is_some_and(|f| same(f, v)),
            Test::Ne(v) => found.is_some_and(|f| same_type(f, v) && !same(f, v)),
            Test::Gt(x) => number().is_some_and(|n| n > *x),
            Test::Gte(x) => number().is_some_and(|n| n >= *x),
            Test::Lt(x) => number().is_some_and(|n| n < *x),
            Test::Lte(x) => number().is_some_and(|n| n <= *x),
            Test::In(items) => found.is_some_and(|f| items.iter().any(|v| same(f, v))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lane_of(rules: &str, body: Value) -> Option<Lane> {
        let rules = parse(rules).expect("rules");
        rules.iter().find(|r| r.matches(&body)).map(|r| r.lane)
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = r#"[{"lane":"critical","pointer":"/amount","gte":10000},
                        {"lane":"bulk","pointer":"/kind","in":["report","export"]},
                        {"lane":"normal","pointer":"","exists":true}]"#;
        let cases = [
            (json!({"amount": 10000}), Some(Lane::Critical)),
            (
                json!({"amount": 10000.5, "kind": "report"}),
                Some(Lane::Critical),
            ),
            (json!({"amount": 9999, "kind": "report"}), Some(Lane::Bulk)),
            (json!({"amount": "10000", "kind": "x"}), Some(Lane::Normal)),
            (json!([1, 2]), Some(Lane::Normal)),
        ];
        for (body, lane) in cases {
            assert_eq!(lane_of(rules, body.clone()), lane, "{body}");
        }
    }

    #[test]
    fn each_operator_and_its_type_rule() {
        let cases = [
            (
                r#"{"lane":"bulk","pointer":"/a","eq":5}"#,
                json!({"a": 5.0}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","eq":5}"#,
                json!({"a": "5"}),
                false,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","eq":"x"}"#,
                json!({"a": "x"}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","eq":null}"#,
                json!({"a": null}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","ne":"x"}"#,
                json!({"a": "y"}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","ne":"x"}"#,
                json!({"a": 1}),
                false,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","ne":"x"}"#,
                json!({}),
                false,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","gt":1}"#,
                json!({"a": 2}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","gt":1}"#,
                json!({"a": 1}),
                false,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","gte":1}"#,
                json!({"a": 1}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","lt":1}"#,
                json!({"a": 0.5}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","lt":1}"#,
                json!({"a": true}),
                false,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","lte":1}"#,
                json!({"a": 1}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a/0","in":[1,"x"]}"#,
                json!({"a": ["x"]}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a/0","in":[1,"x"]}"#,
                json!({"a": [2]}),
                false,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a~1b","exists":true}"#,
                json!({"a/b": 0}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a~0b","exists":true}"#,
                json!({"a~b": 0}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","exists":false}"#,
                json!({"b": 1}),
                true,
            ),
            (
                r#"{"lane":"bulk","pointer":"/a","exists":false}"#,
                json!({"a": null}),
                false,
            ),
        ];
        for (rule, body, matches) in cases {
            let lane = lane_of(&format!("[{rule}]"), body.clone());
            assert_eq!(lane.is_some(), matches, "{rule} on {body}");
        }
    }

    #[test]
    fn bad_rules_say_which_and_why() {
        let cases = [
            ("{", "not JSON"),
            (r#"{"lane":"bulk"}"#, "JSON array"),
            (r#"[1]"#, "rule 1 (1): must be an object"),
            (r#"[{"pointer":"/a","eq":1}]"#, "needs a \"lane\""),
            (
                r#"[{"lane":"urgent","pointer":"/a","eq":1}]"#,
                "critical, normal, bulk",
            ),
            (r#"[{"lane":"bulk","eq":1}]"#, "needs a \"pointer\""),
            (
                r#"[{"lane":"bulk","pointer":"a","eq":1}]"#,
                "must start with /",
            ),
            (
                r#"[{"lane":"bulk","pointer":"/a"}]"#,
                "exactly one operator",
            ),
            (
                r#"[{"lane":"bulk","pointer":"/a","eq":1,"ne":2}]"#,
                "exactly one operator",
            ),
            (
                r#"[{"lane":"bulk","pointer":"/a","gt":"5"}]"#,
                "gt needs a number",
            ),
            (
                r#"[{"lane":"bulk","pointer":"/a","in":[]}]"#,
                "non-empty array",
            ),
            (
                r#"[{"lane":"bulk","pointer":"/a","exists":1}]"#,
                "true or false",
            ),
            (
                r#"[{"lane":"bulk","pointer":"/a","eq":1,"when":2}]"#,
                "unknown key \"when\"",
            ),
            (
                r#"[{"lane":"bulk","pointer":"/a","eq":1},{"lane":"bulk","pointer":"/a","lt":[]}]"#,
                "rule 2",
            ),
        ];
        for (text, why) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
