//! Security contexts of the pods the operator builds, held to Kubernetes' Pod Security Standards:
//! the Campus and Logstash pods meet `restricted`; Filebeat meets `baseline` but for the hostPath
//! volumes it exists to read (operator/tests/pod_security.rs asks the API server's own admission).
//! No UID is fixed: the images name a non-root user and platforms such as OpenShift assign their own.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

fn runtime_default() -> Option<SeccompProfile> {
    Some(SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    })
}

fn drop_all() -> Option<Capabilities> {
    Some(Capabilities {
        drop: Some(vec!["ALL".to_owned()]),
        add: None,
    })
}

/// Pod level, `restricted`: a non-root user and the runtime's default seccomp profile.
pub fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: runtime_default(),
        ..PodSecurityContext::default()
    }
}

/// Container level, `restricted`: no capabilities, no privilege escalation; with
/// `read_only_root` the root filesystem too (the Campus binaries write nothing to disk).
pub fn restricted_container(read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: drop_all(),
        read_only_root_filesystem: Some(read_only_root),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

/// Filebeat's pod: root (the node's log files and its registry directory belong to root), the
/// runtime's seccomp profile.
pub fn filebeat_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_user: Some(0),
        seccomp_profile: runtime_default(),
        ..PodSecurityContext::default()
    }
}

/// Filebeat's container: root reads root's files without any capability, so every one is dropped.
/// The root filesystem stays writable: Filebeat has not yet run read-only on a node here.
pub fn filebeat_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: drop_all(),
        privileged: Some(false),
        ..SecurityContext::default()
    }
}
