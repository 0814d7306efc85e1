//! Webhook delivery over HTTP, with the SSRF guard applied to resolved names.
//!
//! `Callback-Url` is validated when a request is accepted, but a public name
//! can resolve to a private address by delivery time. The client resolves
//! names through [`GuardedResolver`], which drops every address the callback
//! rules refuse, and it never follows redirects (a redirect is another way to
//! reach a target nobody validated), nor a proxy from the environment (which
//! would resolve the name itself, past the guard). Errors never carry the
//! URL: a callback URL may hold a token in its query, and errors are logged
//! and shown on the ticket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use failover_core::callback::{ip_allowed, CallbackRules};
use failover_core::ports::{NotifyError, WebhookSender};
use failover_core::webhook::SignedHeaders;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

struct GuardedResolver {
    rules: CallbackRules,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| ip_allowed(a.ip(), rules))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address callbacks may use").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[derive(Clone)]
pub struct HttpWebhookSender {
    client: reqwest::Client,
}

impl HttpWebhookSender {
    pub fn new(rules: CallbackRules) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { rules }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .user_agent("failover-gateway-webhooks/1")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client })
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(
        &self,
        url: &str,
        headers: &SignedHeaders,
        body: &str,
        timeout: Duration,
    ) -> Result<u16, NotifyError> {
        let mut post = self.client.post(url);
        if let Some(tp) = &headers.traceparent {
            post = post.header("traceparent", tp);
        }
        let resp = post
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("webhook-id", &headers.id)
            .header("webhook-timestamp", &headers.timestamp)
            .header("webhook-signature", &headers.signature)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| NotifyError(e.without_url().to_string()))?;
        Ok(resp.status().as_u16())
    }
}
