//! Named credentials: the gRPC callers (`ESCALATOR_GRPC_CALLERS_FILE`) and the review's
//! reviewers (`ESCALATOR_REVIEWERS_FILE`) are files of `name token` lines, one credential a
//! line, `#` starting a comment. A name may appear on several lines, so two tokens are valid
//! while one replaces the other (a rotation); a token belongs to one name only.
//!
//! Tokens are kept only as SHA-256 digests, compared in constant time over every line (the
//! time taken does not depend on which line matched, or on how much of a token was right), and
//! never written anywhere: errors name the file, the line and the name, never a token. The file
//! is read again when it changes (a Secret's update, an edited file), checked on every use by
//! its size, modification time and inode; a changed file that does not parse leaves the last
//! good one in force and is logged once.
//!
//! A leaf: it imports nothing of ours (the gRPC edge and the web pages both use it).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Shortest token accepted: a short shared secret is guessable.
pub const MIN_TOKEN_CHARS: usize = 16;
/// Longest name accepted (names go to logs, traces, the routing log and reports).
pub const MAX_NAME_CHARS: usize = 64;

/// A credentials file that cannot be used; names the setting and the file, never a token. The
/// CLI exits 64 (EX_USAGE) on it.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {path}: {reason}")]
pub struct CredentialsError {
    /// The setting that names the file (`ESCALATOR_GRPC_CALLERS_FILE`).
    pub setting: &'static str,
    /// The file.
    pub path: String,
    /// What is wrong, with the line number where there is one.
    pub reason: String,
}

/// One `name token` line: the name and the token's digest.
#[derive(Clone)]
struct Entry {
    name: String,
    digest: [u8; 32],
}

/// The credentials of one file.
#[derive(Clone, Default)]
pub struct Credentials {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("names", &self.names())
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `name` is a usable name: letters, digits and `._@-`, at most [`MAX_NAME_CHARS`].
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
}

impl Credentials {
    /// Parses `name token` lines. Blank lines and lines starting with `#` are skipped, and so is
    /// anything after a `#` that starts a field (`ci-bot tok… # since May`).
    ///
    /// # Errors
    /// Every problem, one per line (`line 3: …`), none quoting a token: a line that is not
    /// `name token`, a bad name, a token shorter than [`MIN_TOKEN_CHARS`], a token on two
    /// lines, or a file without any credential.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut problems = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let mut fields = line.split_whitespace().take_while(|f| !f.starts_with('#'));
            let (Some(name), token, extra) = (fields.next(), fields.next(), fields.next()) else {
                continue;
            };
            let Some(token) = token else {
                problems.push(format!(
                    "line {n}: expected `name token`, found a name alone"
                ));
                continue;
            };
            if extra.is_some() {
                problems.push(format!(
                    "line {n}: expected `name token`, found more fields (a token has no spaces)"
                ));
                continue;
            }
            if !valid_name(name) {
                problems.push(format!(
                    "line {n}: name {:?} must be 1 to {MAX_NAME_CHARS} letters, digits, '.', '_', '@' or '-'",
                    name.chars().take(MAX_NAME_CHARS + 1).collect::<String>()
                ));
                continue;
            }
            if token.chars().count() < MIN_TOKEN_CHARS {
                problems.push(format!(
                    "line {n}: the token of {name} is shorter than {MIN_TOKEN_CHARS} characters"
                ));
                continue;
            }
            let d = digest(token);
            if let Some(other) = entries.iter().find(|e| bool::from(e.digest.ct_eq(&d))) {
                problems.push(format!(
                    "line {n}: the token of {name} is also {}'s; each token belongs to one name",
                    other.name
                ));
                continue;
            }
            entries.push(Entry {
                name: name.to_owned(),
                digest: d,
            });
        }
        if problems.is_empty() && entries.is_empty() {
            problems.push("no `name token` line: nobody could log in".to_owned());
        }
        if problems.is_empty() {
            Ok(Self { entries })
        } else {
            Err(problems)
        }
    }

    /// The name whose token `given` is. Every line is compared, in constant time, whatever
    /// matches.
    pub fn verify(&self, given: &str) -> Option<&str> {
        let d = digest(given);
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(e.name.as_str());
            }
        }
        found
    }

    /// The distinct names, in file order.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !names.contains(&e.name.as_str()) {
                names.push(&e.name);
            }
        }
        names
    }

    /// The digests of `name`'s tokens (one, or two during a rotation): keys for what a session
    /// signs with, so a session ends when its token is taken out of the file.
    pub fn keys_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8; 32]> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.name == name)
            .map(|e| &e.digest)
    }
}

/// What identifies one version of a file: size, modification time and inode (a Secret update
/// swaps a symlink, so the inode changes even when size and time do not).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode: m.ino(),
    })
}

/// The version in force and the last version seen (which may be a bad one, logged once).
struct Loaded {
    seen: Option<Stamp>,
    current: Arc<Credentials>,
}

/// A credentials file, read again whenever it changes.
pub struct CredentialsFile {
    setting: &'static str,
    path: PathBuf,
    state: Mutex<Loaded>,
}

impl std::fmt::Debug for CredentialsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsFile")
            .field("setting", &self.setting)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CredentialsFile {
    /// Reads `path`, named by `setting` in errors.
    ///
    /// # Errors
    /// [`CredentialsError`] when the file cannot be read or does not parse.
    pub fn open(setting: &'static str, path: &Path) -> Result<Self, CredentialsError> {
        let error = |reason: String| CredentialsError {
            setting,
            path: path.display().to_string(),
            reason,
        };
        let seen = stamp(path).map_err(|e| error(format!("cannot read: {e}")))?;
        let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
        let current = Credentials::parse(&text).map_err(|p| error(p.join("; ")))?;
        Ok(Self {
            setting,
            path: path.to_owned(),
            state: Mutex::new(Loaded {
                seen: Some(seen),
                current: Arc::new(current),
            }),
        })
    }

    /// [`CredentialsFile::open`] when `path` is set.
    ///
    /// # Errors
    /// As [`CredentialsFile::open`].
    pub fn open_optional(
        setting: &'static str,
        path: Option<&Path>,
    ) -> Result<Option<Arc<Self>>, CredentialsError> {
        path.map(|p| Self::open(setting, p).map(Arc::new))
            .transpose()
    }

    /// The setting that names the file.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The credentials in force: the file is read again first when it changed since it was
    /// last seen. A change that cannot be read or parsed keeps the previous credentials and is
    /// logged (once per version).
    pub fn current(&self) -> Arc<Credentials> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = stamp(&self.path).ok();
        if now == state.seen {
            return state.current.clone();
        }
        state.seen.clone_from(&now);
        let read = if now.is_none() {
            Err(vec!["cannot read it (missing?)".to_owned()])
        } else {
            std::fs::read_to_string(&self.path)
                .map_err(|e| vec![format!("cannot read it: {e}")])
                .and_then(|t| Credentials::parse(&t))
        };
        match read {
            Ok(c) => {
                tracing::info!(
                    setting = self.setting,
                    path = %self.path.display(),
                    names = c.names().len(),
                    "credentials file changed: read again"
                );
                state.current = Arc::new(c);
            }
            Err(problems) => tracing::error!(
                setting = self.setting,
                path = %self.path.display(),
                problems = %problems.join("; "),
                "credentials file changed but cannot be used; the previous credentials stay in force"
            ),
        }
        state.current.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    const A: &str = "token-of-ci-bot-0001";
    const B: &str = "token-of-ci-bot-0002";

    #[test]
    fn lines_comments_and_a_rotation() {
        let c = Credentials::parse(&format!(
            "# callers\n\n  ci-bot {A}\nci-bot {B}   # the new one, since May\nsupport.tools@eu {}\n",
            "x".repeat(16)
        ))
        .unwrap();
        assert_eq!(c.names(), ["ci-bot", "support.tools@eu"]);
        assert_eq!(c.verify(A), Some("ci-bot"));
        assert_eq!(c.verify(B), Some("ci-bot"));
        assert_eq!(c.verify(&"x".repeat(16)), Some("support.tools@eu"));
        assert_eq!(c.verify("token-of-ci-bot-000"), None);
        assert_eq!(c.verify(""), None);
        assert_eq!(c.keys_of("ci-bot").count(), 2);
        assert_eq!(c.keys_of("nobody").count(), 0);
        assert!(!format!("{c:?}").contains("token"));
    }

    #[test]
    fn problems_name_the_line_and_never_the_token() {
        let text = format!(
            "alone\nbad name {A}\nshort abc\nci-bot {A} extra\nci-bot {A}\nother {A}\nbell\u{7} {B}\n"
        );
        let problems = Credentials::parse(&text).unwrap_err();
        assert_eq!(
            problems,
            [
                "line 1: expected `name token`, found a name alone",
                "line 2: expected `name token`, found more fields (a token has no spaces)",
                "line 3: the token of short is shorter than 16 characters",
                "line 4: expected `name token`, found more fields (a token has no spaces)",
                "line 6: the token of other is also ci-bot's; each token belongs to one name",
                "line 7: name \"bell\\u{7}\" must be 1 to 64 letters, digits, '.', '_', '@' or '-'",
            ]
        );
        assert!(
            problems
                .iter()
                .all(|p| !p.contains(A) && !p.contains("abc"))
        );
        assert_eq!(
            Credentials::parse("# nobody yet\n").unwrap_err(),
            ["no `name token` line: nobody could log in"]
        );
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_change_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callers");
        std::fs::write(&path, format!("ci-bot {A}\n")).unwrap();
        let file = CredentialsFile::open("ESCALATOR_GRPC_CALLERS_FILE", &path).unwrap();
        assert_eq!(file.current().verify(A), Some("ci-bot"));
        // A rotation written the way a Secret update lands: a new file renamed over the old.
        let next = dir.path().join("callers.new");
        let mut f = std::fs::File::create(&next).unwrap();
        writeln!(f, "ci-bot {B}").unwrap();
        drop(f);
        std::fs::rename(&next, &path).unwrap();
        let now = file.current();
        assert_eq!((now.verify(A), now.verify(B)), (None, Some("ci-bot")));
        // A broken change keeps the last good credentials; so does a removed file.
        std::fs::write(&next, "ci-bot short\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(file.current().verify(B), Some("ci-bot"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.current().verify(B), Some("ci-bot"));
        let e = CredentialsFile::open("ESCALATOR_REVIEWERS_FILE", &path).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "ESCALATOR_REVIEWERS_FILE {}: cannot read",
                path.display()
            )),
            "{e}"
        );
    }
}
