//! A deliberately tiny Hrana-over-HTTP v2 client for test setup and checks:
//! run a few SQL statements in one `POST /v2/pipeline` and return their raw
//! JSON results. The engine's real client lives in erth-core; this one only
//! exists so the harness can probe, reset and inspect a server.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::time::Duration;

/// The `http(s)://host[:port][/path]` base of a server URL: `libsql://` means
/// `https://`; the query, fragment and a trailing `/` are dropped.
pub fn http_base(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let url = match url.strip_prefix("libsql://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_string(),
    };
    url.trim_end_matches('/').to_string()
}

/// Executes `statements` in order in one pipeline (without arguments) and
/// returns each statement's `result` object (`cols`, `rows`, ...).
///
/// Ends the pipeline with `close` so sqld frees the stream at once; servers
/// that reject `close` (tursodb answers HTTP 500) get the pipeline again
/// without it. Any statement error fails the call with its code and message.
pub async fn execute(url: &str, token: Option<&str>, statements: &[&str]) -> Result<Vec<Value>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|source| Error::Http {
            what: "building an HTTP client".into(),
            source,
        })?;
    let endpoint = format!("{}/v2/pipeline", http_base(url));
    let mut requests: Vec<Value> = statements
        .iter()
        .map(|sql| json!({"type": "execute", "stmt": {"sql": sql}}))
        .collect();
    requests.push(json!({"type": "close"}));
    let (mut status, mut body) = post(&client, &endpoint, token, &requests).await?;
    if !status.is_success() && body.contains("close") {
        requests.pop();
        (status, body) = post(&client, &endpoint, token, &requests).await?;
    }
    if !status.is_success() {
        return Err(Error::Server(format!(
            "POST {endpoint}: HTTP {status}: {}",
            body.trim()
        )));
    }
    let response: Value = serde_json::from_str(&body)
        .map_err(|e| Error::Server(format!("POST {endpoint}: not Hrana JSON ({e}): {body}")))?;
    let results = response["results"]
        .as_array()
        .ok_or_else(|| Error::Server(format!("POST {endpoint}: no `results` in {body}")))?;
    statements
        .iter()
        .enumerate()
        .map(|(i, sql)| {
            let result = results.get(i).ok_or_else(|| {
                Error::Server(format!("POST {endpoint}: no result for `{sql}` in {body}"))
            })?;
            if result["type"] == "ok" {
                Ok(result["response"]["result"].clone())
            } else {
                Err(Error::Server(format!(
                    "`{sql}` failed on {endpoint}: {} {}",
                    result["error"]["code"], result["error"]["message"]
                )))
            }
        })
        .collect()
}

async fn post(
    client: &reqwest::Client,
    endpoint: &str,
    token: Option<&str>,
    requests: &[Value],
) -> Result<(reqwest::StatusCode, String)> {
    let http = |source| Error::Http {
        what: format!("POST {endpoint}"),
        source,
    };
    let mut request = client
        .post(endpoint)
        .header("content-type", "application/json")
        .body(json!({ "requests": requests }).to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(http)?;
    let status = response.status();
    let body = response.text().await.map_err(http)?;
    Ok((status, body))
}

/// Runs one statement and returns its rows, each cell as text (a text
/// value as itself, any other value as its JSON: `42`, `null`).
pub async fn text_rows(url: &str, token: Option<&str>, sql: &str) -> Result<Vec<Vec<String>>> {
    let res = execute(url, token, &[sql]).await?;
    let rows = res[0]["rows"]
        .as_array()
        .ok_or_else(|| Error::Server(format!("`{sql}` returned no rows array")))?;
    Ok(rows
        .iter()
        .map(|r| {
            r.as_array()
                .map(|cells| {
                    cells
                        .iter()
                        .map(|c| {
                            let v = &c["value"];
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_base_normalises_what_users_paste() {
        assert_eq!(http_base("libsql://db.example.io"), "https://db.example.io");
        assert_eq!(
            http_base("https://db.example.io/?authToken=secret"),
            "https://db.example.io"
        );
        assert_eq!(http_base("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
    }
}
