//! The shipped deployment files agree with the code: the Kubernetes ConfigMap's and the compose
//! stack's TOML load with the real loader (no unknown key, no bad value), the pod's grace period
//! outlasts the drain deadline, and the ports the manifests name are the ones configured.
//! (scripts/check-deploy validates the same files as YAML against their schemas; these read
//! only the few scalar lines they need from files of our own.)

use std::{collections::BTreeMap, io::Write as _, path::Path};

use escalator::config::Settings;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The block scalar under `key: |` (its lines, de-indented).
fn block(text: &str, key: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no `{key}: |` block"));
    let indent = head.len() - head.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The integer after the first `key:` at or after the line that contains `after`.
fn int_after(text: &str, after: &str, key: &str) -> u64 {
    text.lines()
        .skip_while(|l| !l.contains(after))
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .and_then(|v| v.trim().trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no `{key}:` after {after:?}"))
}

fn load(toml: &str) -> Settings {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(toml.as_bytes()).unwrap();
    let path = f.path().to_str().unwrap().to_owned();
    Settings::load(&BTreeMap::from([("ESCALATOR_CONFIG", path.as_str())]))
        .unwrap_or_else(|e| panic!("the shipped configuration does not load: {e}"))
}

#[test]
fn the_kubernetes_config_loads_and_the_grace_period_outlasts_the_drain() {
    let configmap = read("deploy/k8s/configmap.yaml");
    let s = load(&block(&configmap, "escalator.toml"));
    let deployment = read("deploy/k8s/deployment.yaml");
    let grace = int_after(
        &deployment,
        "terminationGracePeriodSeconds",
        "terminationGracePeriodSeconds",
    );
    let pre_stop = int_after(&deployment, "preStop:", "seconds");
    assert!(
        grace > pre_stop + s.shutdown_grace.as_secs(),
        "terminationGracePeriodSeconds {grace} must exceed the preStop pause {pre_stop} + \
         shutdown_grace_secs {}",
        s.shutdown_grace.as_secs()
    );
    assert_eq!(s.http_addr.port(), 8080);
    assert_eq!(s.grpc_addr.port(), 50051);
    assert!(s.http_addr.ip().is_unspecified() && s.grpc_addr.ip().is_unspecified());
    for (name, port) in [("http", 8080), ("grpc", 50051)] {
        assert_eq!(
            int_after(&deployment, &format!("- name: {name}"), "containerPort"),
            port,
            "containerPort {name}"
        );
    }
    // The Deployment's own env repeats the addresses; they must match the file.
    for (var, addr) in [
        ("ESCALATOR_HTTP_ADDR", s.http_addr.to_string()),
        ("ESCALATOR_GRPC_ADDR", s.grpc_addr.to_string()),
    ] {
        let line = deployment
            .lines()
            .skip_while(|l| !l.contains(&format!("name: {var}")))
            .nth(1)
            .unwrap_or_else(|| panic!("{var} not set in the Deployment"));
        assert!(line.contains(&format!("\"{addr}\"")), "{var}: {line}");
    }
}

#[test]
fn the_compose_config_loads_and_its_stop_grace_outlasts_the_drain() {
    let s = load(&read("deploy/compose/escalator.toml"));
    let compose = read("deploy/compose.yaml");
    let stop: u64 = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("stop_grace_period:"))
        .and_then(|v| v.trim().strip_suffix('s'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no stop_grace_period in seconds"));
    assert!(stop > s.shutdown_grace.as_secs(), "{stop} s");
    assert_eq!((s.http_addr.port(), s.grpc_addr.port()), (8080, 50051));
}

/// The image's defaults: the addresses it sets are the ones it exposes and checks.
#[test]
fn the_dockerfile_exposes_what_it_listens_on() {
    let d = read("deploy/Dockerfile");
    assert!(d.contains("ESCALATOR_GRPC_ADDR=0.0.0.0:50051"));
    assert!(d.contains("ESCALATOR_HTTP_ADDR=0.0.0.0:8080"));
    assert!(d.lines().any(|l| l.trim() == "EXPOSE 8080 50051"));
    assert!(d.contains("CMD [\"/usr/local/bin/escalator\", \"healthcheck\"]"));
    assert!(d.lines().any(|l| l.trim() == "CMD [\"serve\"]"));
}

/// Every shipped way to run escalator listens for gRPC on 0.0.0.0, so each must name callers
/// (or it would not start): the ConfigMap and the compose file name a callers file, the Secret
/// example and the compose stack's file parse as callers, and the systemd unit passes one.
#[test]
fn every_shipped_deploy_listening_on_all_addresses_names_its_grpc_callers() {
    use escalator::credentials::Credentials;
    for (file, config) in [
        (
            "deploy/k8s/configmap.yaml",
            block(&read("deploy/k8s/configmap.yaml"), "escalator.toml"),
        ),
        (
            "deploy/compose/escalator.toml",
            read("deploy/compose/escalator.toml"),
        ),
    ] {
        let s = load(&config);
        assert!(s.grpc_addr.ip().is_unspecified(), "{file}");
        assert!(
            s.grpc.callers_file.is_some(),
            "{file} names no gRPC callers"
        );
        assert!(!s.grpc.allow_unauthenticated, "{file}");
    }
    let k8s = load(&block(&read("deploy/k8s/configmap.yaml"), "escalator.toml"));
    assert!(
        k8s.review.reviewers_file.is_some(),
        "named reviewers in Kubernetes"
    );
    let compose = read("deploy/compose.yaml");
    assert!(compose.contains("file: ./compose/grpc-callers"));
    Credentials::parse(&read("deploy/compose/grpc-callers")).unwrap();
    let secret = read("deploy/k8s/secret.example.yaml");
    for key in ["grpc-callers", "reviewers"] {
        Credentials::parse(&block(&secret, key)).unwrap_or_else(|p| panic!("{key}: {p:?}"));
    }
    let unit = read("deploy/escalator.service");
    assert!(unit.contains("Environment=ESCALATOR_GRPC_ADDR=0.0.0.0:50051"));
    assert!(unit.contains("Environment=ESCALATOR_GRPC_CALLERS_FILE=%d/grpc-callers"));
    assert!(unit.contains("LoadCredential=grpc-callers:/etc/escalator/grpc-callers"));
}
