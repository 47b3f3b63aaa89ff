//! What the kernel lets the exec and qemu drivers use besides cgroups:
//! Landlock (`landlock.abi`), namespaces (`namespaces.<kind>`) and KVM
//! (`kvm.usable`). The answers come from the [`Probes`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::probe::{Namespace, ProbeError, Probes};
use crate::read::Ctx;

/// The probes' answers, kept for the drivers' health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Isolation {
    pub landlock: Result<u32, ProbeError>,
    pub namespaces: BTreeMap<Namespace, Result<(), ProbeError>>,
    pub kvm: Result<i32, ProbeError>,
}

fn bool_str(b: bool) -> String {
    if b { "true" } else { "false" }.to_owned()
}

/// Asks the probes and adds the isolation attributes.
pub(crate) fn fingerprint(
    ctx: &mut Ctx<'_>,
    probes: &mut dyn Probes,
    attrs: &mut BTreeMap<String, String>,
) -> Isolation {
    let landlock = probes.landlock_abi();
    let abi = landlock.as_ref().map_or(0, |v| *v);
    attrs.insert("landlock.abi".into(), abi.to_string());

    let mut namespaces = BTreeMap::new();
    for kind in Namespace::ALL {
        let r = probes.namespace(kind);
        if let Err(ProbeError::NotRecorded(what)) = &r {
            ctx.warn(
                "namespaces",
                format!("the fixture's probes.json has no answer for {what}"),
            );
        }
        attrs.insert(format!("namespaces.{kind}"), bool_str(r.is_ok()));
        namespaces.insert(kind, r);
    }

    let device = ctx.roots.map(Path::new("/dev/kvm"));
    let kvm = probes.kvm(&device);
    attrs.insert("kvm.usable".into(), bool_str(kvm.is_ok()));
    Isolation {
        landlock,
        namespaces,
        kvm,
    }
}
