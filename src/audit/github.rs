//! A small GitHub REST client: exactly the calls the labels pull request makes (a branch, one
//! commit, a pull request) through the Git database API, so no local git is needed. Facts:
//! `shared/reference/github.md` (docs.github.com/en/rest, API version 2022-11-28). A dozen
//! typed calls over reqwest rather than octocrab: that crate would add its own HTTP stack and
//! retry policy for what is a handful of JSON requests.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::settings::GithubSettings;

/// The REST API version we speak.
pub const API_VERSION: &str = "2022-11-28";

/// Why a GitHub call failed.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    /// 401: the token is wrong, expired or revoked.
    #[error("GitHub refused the token (401 Bad credentials): check GITHUB_TOKEN")]
    Unauthorized,
    /// 403: no permission, or a rate limit.
    #[error(
        "GitHub forbade {what} (403: {message}); the token needs Contents and Pull requests \
         read and write on the repository"
    )]
    Forbidden {
        /// The call.
        what: String,
        /// GitHub's message.
        message: String,
    },
    /// 404: not there, or a private repository the token cannot see.
    #[error("{what} not found on GitHub (404), or the token cannot see it")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// 422: validation (a branch or pull request that exists, no commits between branches).
    #[error("GitHub rejected {what} (422): {message}")]
    Invalid {
        /// The call.
        what: String,
        /// GitHub's message, with its `errors[].message` when given.
        message: String,
    },
    /// Any other status.
    #[error("GitHub answered {status} to {what}: {message}")]
    Upstream {
        /// The call.
        what: String,
        /// The status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// The request did not get an answer.
    #[error("cannot reach GitHub for {what}: {reason}")]
    Transport {
        /// The call.
        what: String,
        /// The cause chain.
        reason: String,
    },
    /// An answer we cannot read.
    #[error("unexpected answer from GitHub to {what}: {reason}")]
    Unreadable {
        /// The call.
        what: String,
        /// Why.
        reason: String,
    },
}

/// An open pull request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pull {
    /// Its number.
    pub number: u64,
    /// Its page.
    pub html_url: String,
}

#[derive(Deserialize)]
struct Sha {
    sha: String,
}

#[derive(Deserialize)]
struct Ref {
    object: Sha,
}

#[derive(Deserialize)]
struct Commit {
    tree: Sha,
}

#[derive(Deserialize)]
struct Contents {
    content: Option<String>,
    encoding: Option<String>,
}

/// The client for one repository.
#[derive(Debug, Clone)]
pub struct Github {
    http: reqwest::Client,
    settings: GithubSettings,
}

impl Github {
    /// A client for `settings`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(settings: GithubSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            // GitHub refuses requests without a User-Agent.
            .user_agent(concat!("escalator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, settings })
    }

    /// The settings (the repository, the base branch, the paths).
    pub fn settings(&self) -> &GithubSettings {
        &self.settings
    }

    fn repo_url(&self, path: &str) -> String {
        format!(
            "{}/repos/{}/{}{path}",
            self.settings.api_url, self.settings.owner, self.settings.repo
        )
    }

    /// One request; the JSON answer, or the error its status means.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<Value, GithubError> {
        let mut req = self
            .http
            .request(method, self.repo_url(path))
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", self.settings.token.expose_secret()),
            )
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| GithubError::Transport {
            what: what.to_owned(),
            reason: crate::causes::chain(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| GithubError::Transport {
            what: what.to_owned(),
            reason: crate::causes::chain(&e),
        })?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let mut message = v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let details: Vec<&str> = v
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("message").and_then(Value::as_str))
            .collect();
        if !details.is_empty() {
            message = format!("{message}: {}", details.join("; "));
        }
        let message = crate::text::excerpt(&message, 300);
        let what = what.to_owned();
        Err(match status {
            StatusCode::UNAUTHORIZED => GithubError::Unauthorized,
            StatusCode::FORBIDDEN => GithubError::Forbidden { what, message },
            StatusCode::NOT_FOUND => GithubError::NotFound { what },
            StatusCode::UNPROCESSABLE_ENTITY => GithubError::Invalid { what, message },
            s => GithubError::Upstream {
                what,
                status: s.as_u16(),
                message,
            },
        })
    }

    async fn call_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<T, GithubError> {
        let v = self.call(method, path, body, what).await?;
        serde_json::from_value(v).map_err(|e| GithubError::Unreadable {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Checks the repository exists and the token can see it.
    ///
    /// # Errors
    /// [`GithubError::NotFound`] naming the repository, [`GithubError::Unauthorized`], …
    pub async fn repository(&self) -> Result<(), GithubError> {
        let what = format!("repository {}/{}", self.settings.owner, self.settings.repo);
        self.call(Method::GET, "", None, &what).await.map(drop)
    }

    /// The commit a branch points at.
    ///
    /// # Errors
    /// [`GithubError::NotFound`] when the branch does not exist.
    pub async fn branch_head(&self, branch: &str) -> Result<String, GithubError> {
        let r: Ref = self
            .call_as(
                Method::GET,
                &format!("/git/ref/heads/{branch}"),
                None,
                &format!("branch {branch}"),
            )
            .await?;
        Ok(r.object.sha)
    }

    /// The tree of a commit.
    ///
    /// # Errors
    /// A [`GithubError`].
    pub async fn commit_tree(&self, commit: &str) -> Result<String, GithubError> {
        let c: Commit = self
            .call_as(
                Method::GET,
                &format!("/git/commits/{commit}"),
                None,
                &format!("commit {commit}"),
            )
            .await?;
        Ok(c.tree.sha)
    }

    /// A file's text on `git_ref`, `None` when it is not there.
    ///
    /// # Errors
    /// A [`GithubError`] other than 404, or content that is not base64 UTF-8.
    pub async fn file(&self, path: &str, git_ref: &str) -> Result<Option<String>, GithubError> {
        let what = format!("file {path} on {git_ref}");
        let c: Contents = match self
            .call_as(
                Method::GET,
                &format!("/contents/{path}?ref={git_ref}"),
                None,
                &what,
            )
            .await
        {
            Ok(c) => c,
            Err(GithubError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let unreadable = |reason: String| GithubError::Unreadable {
            what: what.clone(),
            reason,
        };
        if c.encoding.as_deref() != Some("base64") {
            return Err(unreadable(format!(
                "encoding {:?} (files over 1 MB are not served inline)",
                c.encoding
            )));
        }
        // The content is base64 with a line break every 60 characters.
        let packed: String = c
            .content
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(packed)
            .map_err(|e| unreadable(e.to_string()))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| unreadable(e.to_string()))
    }

    /// A commit of `base_commit`'s tree with `path` replaced by `content`: blob, tree, commit.
    ///
    /// # Errors
    /// A [`GithubError`].
    pub async fn commit_file(
        &self,
        base_commit: &str,
        base_tree: &str,
        path: &str,
        content: &str,
        message: &str,
    ) -> Result<String, GithubError> {
        let blob: Sha = self
            .call_as(
                Method::POST,
                "/git/blobs",
                Some(json!({"content": content, "encoding": "utf-8"})),
                "new blob",
            )
            .await?;
        let tree: Sha = self
            .call_as(
                Method::POST,
                "/git/trees",
                Some(json!({
                    "base_tree": base_tree,
                    "tree": [{"path": path, "mode": "100644", "type": "blob", "sha": blob.sha}],
                })),
                "new tree",
            )
            .await?;
        let commit: Sha = self
            .call_as(
                Method::POST,
                "/git/commits",
                Some(json!({"message": message, "tree": tree.sha, "parents": [base_commit]})),
                "new commit",
            )
            .await?;
        Ok(commit.sha)
    }

    /// Points `branch` at `commit`: creates it, or (when it exists) moves it there by force, so
    /// a re-run replaces its one commit instead of stacking another.
    ///
    /// # Errors
    /// A [`GithubError`].
    pub async fn set_branch(&self, branch: &str, commit: &str) -> Result<(), GithubError> {
        let created = self
            .call(
                Method::POST,
                "/git/refs",
                Some(json!({"ref": format!("refs/heads/{branch}"), "sha": commit})),
                &format!("new branch {branch}"),
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(GithubError::Invalid { message, .. })
                if message.contains("Reference already exists") =>
            {
                self.call(
                    Method::PATCH,
                    &format!("/git/refs/heads/{branch}"),
                    Some(json!({"sha": commit, "force": true})),
                    &format!("branch {branch}"),
                )
                .await
                .map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// The open pull request from `branch` into `base`, if any.
    ///
    /// # Errors
    /// A [`GithubError`].
    pub async fn open_pull(&self, branch: &str, base: &str) -> Result<Option<Pull>, GithubError> {
        let pulls: Vec<Pull> = self
            .call_as(
                Method::GET,
                &format!(
                    "/pulls?state=open&head={}:{branch}&base={base}",
                    self.settings.owner
                ),
                None,
                "open pull requests",
            )
            .await?;
        Ok(pulls.into_iter().next())
    }

    /// Opens a pull request.
    ///
    /// # Errors
    /// [`GithubError::Invalid`] when one exists already, …
    pub async fn create_pull(
        &self,
        branch: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<Pull, GithubError> {
        self.call_as(
            Method::POST,
            "/pulls",
            Some(
                json!({"title": title, "head": branch, "base": base, "body": body, "draft": false}),
            ),
            "new pull request",
        )
        .await
    }

    /// Replaces a pull request's title and body.
    ///
    /// # Errors
    /// A [`GithubError`].
    pub async fn update_pull(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<Pull, GithubError> {
        self.call_as(
            Method::PATCH,
            &format!("/pulls/{number}"),
            Some(json!({"title": title, "body": body})),
            &format!("pull request #{number}"),
        )
        .await
    }
}
