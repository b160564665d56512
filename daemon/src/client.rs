//! A small blocking client of the daemon's API for the CLI. Errors carry the
//! server's message.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the daemon at {server}: {message}")]
    Transport { server: String, message: String },
    #[error("unexpected response from {server}: {message}")]
    Response { server: String, message: String },
}

pub struct Client {
    server: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(server: &str) -> Self {
        Client {
            server: server.trim_end_matches('/').to_owned(),
            token: None,
            agent: ureq::AgentBuilder::new().build(),
        }
    }

    /// Sends `Authorization: Bearer TOKEN` with every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let req = self.agent.request(method, &self.url(path));
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    fn finish(&self, r: Result<ureq::Response, ureq::Error>) -> Result<Value, ClientError> {
        match r {
            Ok(resp) if resp.status() == 204 => Ok(Value::Null),
            Ok(resp) => resp.into_json().map_err(|e| ClientError::Response {
                server: self.server.clone(),
                message: e.to_string(),
            }),
            Err(ureq::Error::Status(status, resp)) => {
                let body: Value = resp.into_json().unwrap_or(Value::Null);
                let err = &body["error"];
                Err(ClientError::Api {
                    status,
                    code: err["code"].as_str().unwrap_or("unknown").to_owned(),
                    message: err["message"]
                        .as_str()
                        .unwrap_or("the server gave no message")
                        .to_owned(),
                })
            }
            Err(e) => Err(ClientError::Transport {
                server: self.server.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// POSTs `body` (JSON text) with extra headers.
    pub fn post_raw(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        let mut req = self
            .request("POST", path)
            .set("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.set(k, v);
        }
        self.finish(req.send_bytes(body))
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.finish(self.request("GET", path).call())
    }

    /// GET with query parameters, encoded by the client.
    pub fn get_query(&self, path: &str, query: &[(String, String)]) -> Result<Value, ClientError> {
        let mut req = self.request("GET", path);
        for (k, v) in query {
            req = req.query(k, v);
        }
        self.finish(req.call())
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.finish(self.request("POST", path).send_json(body))
    }

    pub fn send_bytes(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Value, ClientError> {
        self.finish(
            self.request(method, path)
                .set("Content-Type", content_type)
                .send_bytes(body),
        )
    }
}
