//! Settings of the gRPC edge: who may call (`ESCALATOR_GRPC_CALLERS_FILE`, `[grpc]`
//! `callers_file`), whether anyone may (`allow_unauthenticated`), reflection, and TLS.
//!
//! Secure by default: a gRPC address that is not loopback needs callers (or the explicit
//! `allow_unauthenticated = true`); without either the configuration is refused, naming the
//! setting, before anything starts. On `127.0.0.1` nothing is needed, so the quick start keeps
//! working.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use serde::Deserialize;

use crate::{
    credentials::CredentialsFile,
    env::{ConfigError, EnvSource, Setting, SettingDefault, invalid},
};

/// The settings this module owns (rendered into the reference in `deploy/README.md`).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "ESCALATOR_GRPC_CALLERS_FILE",
        default: SettingDefault::Unset,
        meaning: "The gRPC callers: a file of `name token` lines (`#` comments; a name on two lines during a rotation; tokens at least 16 characters). Calls must carry `authorization: Bearer <token>`; the name is stored on the decision. Read again when it changes. Wins over `grpc.callers_file`. Unset: only a loopback gRPC address may start (see `grpc.allow_unauthenticated`).",
        example: "/run/secrets/escalator/grpc-callers",
    },
    Setting {
        key: "grpc.callers_file",
        default: SettingDefault::Unset,
        meaning: "The gRPC callers file, when `ESCALATOR_GRPC_CALLERS_FILE` is unset.",
        example: "\"/run/secrets/escalator/grpc-callers\"",
    },
    Setting {
        key: "grpc.allow_unauthenticated",
        default: SettingDefault::Value("false"),
        meaning: "Serve `Classify` and `Route` to anyone who can reach a non-loopback gRPC address, without callers. Without it (and without callers) such an address stops the start (exit 64).",
        example: "true",
    },
    Setting {
        key: "grpc.reflection",
        default: SettingDefault::Derived("on for a loopback gRPC address, else off"),
        meaning: "Serve gRPC server reflection (`grpcurl` without the proto). `grpc.health.v1` is always served, without a token.",
        example: "true",
    },
    Setting {
        key: "grpc.tls_cert_file",
        default: SettingDefault::Unset,
        meaning: "PEM certificate chain of the gRPC server: with `grpc.tls_key_file`, gRPC is served over TLS only. A renewed certificate is read at the next start.",
        example: "\"/run/secrets/escalator/tls/tls.crt\"",
    },
    Setting {
        key: "grpc.tls_key_file",
        default: SettingDefault::Unset,
        meaning: "PEM private key of `grpc.tls_cert_file`.",
        example: "\"/run/secrets/escalator/tls/tls.key\"",
    },
    Setting {
        key: "grpc.client_ca_file",
        default: SettingDefault::Unset,
        meaning: "PEM CA certificate(s) client certificates must chain to (mutual TLS): a client without such a certificate is refused during the handshake. Needs `grpc.tls_cert_file`.",
        example: "\"/run/secrets/escalator/tls/ca.crt\"",
    },
];

/// The files of the gRPC server's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain (`[grpc] tls_cert_file`).
    pub cert: PathBuf,
    /// PEM private key (`[grpc] tls_key_file`).
    pub key: PathBuf,
    /// PEM CA of the client certificates, for mutual TLS (`[grpc] client_ca_file`).
    pub client_ca: Option<PathBuf>,
}

/// The gRPC edge's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcSettings {
    /// The callers file (`ESCALATOR_GRPC_CALLERS_FILE`, `[grpc] callers_file`); `None`: no
    /// token is asked for.
    pub callers_file: Option<PathBuf>,
    /// `[grpc] allow_unauthenticated`: a non-loopback address may serve without callers.
    pub allow_unauthenticated: bool,
    /// `[grpc] reflection` (default: on for a loopback address).
    pub reflection: bool,
    /// TLS, when configured.
    pub tls: Option<TlsFiles>,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        Self {
            callers_file: None,
            allow_unauthenticated: false,
            reflection: true,
            tls: None,
        }
    }
}

/// `[grpc]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileGrpc {
    callers_file: Option<PathBuf>,
    allow_unauthenticated: Option<bool>,
    reflection: Option<bool>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
}

/// A path setting: `None` when blank.
fn path(p: Option<PathBuf>) -> Option<PathBuf> {
    p.filter(|p| !p.as_os_str().is_empty())
}

impl GrpcSettings {
    /// Loads `[grpc]` and `ESCALATOR_GRPC_CALLERS_FILE` for a server listening on `addr`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting: a non-loopback `addr` without callers and without
    /// `allow_unauthenticated`, half a TLS key pair, or a client CA without TLS.
    pub(crate) fn load(
        env: &dyn EnvSource,
        file: FileGrpc,
        addr: SocketAddr,
    ) -> Result<Self, ConfigError> {
        let callers_file = env
            .get("ESCALATOR_GRPC_CALLERS_FILE")
            .map(PathBuf::from)
            .or(path(file.callers_file));
        let allow_unauthenticated = file.allow_unauthenticated.unwrap_or(false);
        let loopback = addr.ip().is_loopback();
        if !loopback && callers_file.is_none() && !allow_unauthenticated {
            return Err(invalid(
                "ESCALATOR_GRPC_CALLERS_FILE",
                format!(
                    "the gRPC address {addr} is not loopback, so Classify and Route would answer \
                     anyone who can reach it: name a callers file (ESCALATOR_GRPC_CALLERS_FILE or \
                     [grpc] callers_file), or set [grpc] allow_unauthenticated = true to serve \
                     without tokens"
                ),
            ));
        }
        let tls = match (
            path(file.tls_cert_file),
            path(file.tls_key_file),
            path(file.client_ca_file),
        ) {
            (Some(cert), Some(key), client_ca) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None, None) => None,
            (Some(_), None, _) => {
                return Err(invalid(
                    "grpc.tls_key_file",
                    "must be set with grpc.tls_cert_file",
                ));
            }
            (None, Some(_), _) => {
                return Err(invalid(
                    "grpc.tls_cert_file",
                    "must be set with grpc.tls_key_file",
                ));
            }
            (None, None, Some(_)) => {
                return Err(invalid(
                    "grpc.client_ca_file",
                    "needs grpc.tls_cert_file and grpc.tls_key_file (mutual TLS is TLS first)",
                ));
            }
        };
        Ok(Self {
            callers_file,
            allow_unauthenticated,
            reflection: file.reflection.unwrap_or(loopback),
            tls,
        })
    }
}

impl GrpcSettings {
    /// The callers file, read (and from then on re-read when it changes), or `None` when no
    /// token is asked for.
    ///
    /// # Errors
    /// [`ConfigError`] naming `ESCALATOR_GRPC_CALLERS_FILE` when the file cannot be read or
    /// parsed (never quoting a token).
    pub fn callers(&self) -> Result<Option<Arc<CredentialsFile>>, ConfigError> {
        CredentialsFile::open_optional("ESCALATOR_GRPC_CALLERS_FILE", self.callers_file.as_deref())
            .map_err(|e| invalid(e.setting, format!("{}: {}", e.path, e.reason)))
    }

    /// The server's TLS configuration from the PEM files, when TLS is configured.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting of a file that cannot be read.
    pub fn server_tls(&self) -> Result<Option<tonic::transport::ServerTlsConfig>, ConfigError> {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let read = |key: &str, p: &std::path::Path| {
            std::fs::read(p).map_err(|e| invalid(key, format!("{}: {e}", p.display())))
        };
        let identity = Identity::from_pem(
            read("grpc.tls_cert_file", &tls.cert)?,
            read("grpc.tls_key_file", &tls.key)?,
        );
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &tls.client_ca {
            // Required, not optional: a client without a certificate from this CA is refused
            // during the handshake.
            config = config
                .client_ca_root(Certificate::from_pem(read("grpc.client_ca_file", ca)?))
                .client_auth_optional(false);
        }
        // Built once here so a key that does not match its certificate (or is no key) stops
        // the start, before anything is served.
        tonic::transport::Server::builder()
            .tls_config(config.clone())
            .map_err(|e| {
                invalid(
                    "grpc.tls_cert_file",
                    format!(
                        "{} with grpc.tls_key_file is not usable: {e}",
                        tls.cert.display()
                    ),
                )
            })?;
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn load(env: &[(&str, &str)], toml: &str, addr: &str) -> Result<GrpcSettings, ConfigError> {
        let env: BTreeMap<&str, &str> = env.iter().copied().collect();
        GrpcSettings::load(&env, toml::from_str(toml).unwrap(), addr.parse().unwrap())
    }

    #[test]
    fn loopback_needs_nothing_and_reflects_by_default() {
        for addr in ["127.0.0.1:50051", "[::1]:50051", "127.0.0.2:0"] {
            let s = load(&[], "", addr).unwrap();
            assert_eq!(s, GrpcSettings::default(), "{addr}");
        }
    }

    #[test]
    fn a_reachable_address_without_callers_stops_the_start_naming_the_setting() {
        for addr in ["0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051"] {
            let e = load(&[], "", addr).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "ESCALATOR_GRPC_CALLERS_FILE: the gRPC address {addr} is not loopback"
                )),
                "{e}"
            );
            assert!(e.contains("[grpc] allow_unauthenticated = true"), "{e}");
        }
        // Callers (from either place), or the explicit opt-out, let it start; reflection is
        // then off unless asked for.
        let s = load(
            &[("ESCALATOR_GRPC_CALLERS_FILE", "/env/callers")],
            "callers_file = \"/file/callers\"",
            "0.0.0.0:1",
        )
        .unwrap();
        assert_eq!(s.callers_file, Some(PathBuf::from("/env/callers")));
        assert!(!s.reflection);
        let s = load(&[], "callers_file = \"/file/callers\"", "0.0.0.0:1").unwrap();
        assert_eq!(s.callers_file, Some(PathBuf::from("/file/callers")));
        let s = load(
            &[],
            "allow_unauthenticated = true\nreflection = true",
            "0.0.0.0:1",
        )
        .unwrap();
        assert!(s.allow_unauthenticated && s.reflection && s.callers_file.is_none());
    }

    #[test]
    fn tls_needs_both_halves_and_mutual_tls_needs_tls() {
        let s = load(
            &[],
            "tls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\nclient_ca_file = \"ca.pem\"",
            "127.0.0.1:0",
        )
        .unwrap();
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into(),
                client_ca: Some("ca.pem".into())
            })
        );
        for (toml, key) in [
            ("tls_cert_file = \"c.pem\"", "grpc.tls_key_file"),
            ("tls_key_file = \"k.pem\"", "grpc.tls_cert_file"),
            ("client_ca_file = \"ca.pem\"", "grpc.client_ca_file"),
        ] {
            let e = load(&[], toml, "127.0.0.1:0").unwrap_err().to_string();
            assert!(e.starts_with(&format!("{key}: ")), "{toml}: {e}");
        }
    }
}
