//! Which drill applies, and how the stored set changes.

use super::*;

fn drill(mode: ForceMode, scope: Scope, until_ms: i64) -> Drill {
    Drill {
        mode,
        scope,
        started_ms: 0,
        until_ms,
        by: "operator:t".into(),
    }
}

#[test]
fn the_most_specific_active_drill_applies() {
    let set = vec![
        drill(ForceMode::Async, Scope::All, 100),
        drill(ForceMode::Sync, Scope::Group("pay".into()), 100),
        drill(ForceMode::Async, Scope::Route("refund".into()), 50),
    ];
    let mode = |route, group, now| applying(&set, route, group, now).map(|d| d.mode);
    assert_eq!(mode("orders", "default", 10), Some(ForceMode::Async));
    assert_eq!(mode("charge", "pay", 10), Some(ForceMode::Sync));
    assert_eq!(mode("refund", "pay", 10), Some(ForceMode::Async));
    assert_eq!(
        mode("refund", "pay", 50),
        Some(ForceMode::Sync),
        "the route's ended"
    );
    assert_eq!(mode("refund", "pay", 100), None, "all ended");
}

#[test]
fn starting_replaces_the_same_scope_and_stopping_removes() {
    let a = drill(ForceMode::Async, Scope::All, 100);
    let g = drill(ForceMode::Async, Scope::Group("pay".into()), 100);
    let ended = drill(ForceMode::Async, Scope::Route("x".into()), 5);
    let set = with_started(vec![a.clone(), ended], &g, 10);
    assert_eq!(set, vec![a.clone(), g.clone()], "an ended drill is dropped");
    let sync = drill(ForceMode::Sync, Scope::All, 200);
    let set = with_started(set, &sync, 10);
    assert_eq!(set, vec![g.clone(), sync.clone()]);
    let (left, gone) = with_stopped(set.clone(), Some(&Scope::All));
    assert_eq!((left, gone), (vec![g], 1));
    assert_eq!(with_stopped(set, None).1, 2);
}

#[test]
fn a_drill_reads_back_and_refuses_auto() {
    let d = drill(ForceMode::Sync, Scope::Route("r".into()), 9);
    let text = serde_json::to_string(&d).unwrap();
    assert!(
        text.contains(r#""mode":"sync""#) && text.contains(r#""kind":"route""#),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<Drill>(&text).unwrap(), d);
    let auto = text.replace(r#""sync""#, r#""auto""#);
    assert!(serde_json::from_str::<Drill>(&auto).is_err());
}
