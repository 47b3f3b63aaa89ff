//! Kernel, distribution, hostname and memory: `/proc/sys/kernel/*`,
//! `/etc/os-release` and `/proc/meminfo`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::read::{Ctx, clean};

const AREA: &str = "os";

/// Nomad's `kernel.version`: the release up to the first `-` or `+`
/// (`6.1.0-28-amd64` gives `6.1.0`, `6.6.51+rpt-rpi-v8` gives `6.6.51`).
pub(crate) fn short_kernel_version(release: &str) -> &str {
    release.split(['-', '+']).next().unwrap_or(release)
}

/// Parses `os-release`'s `KEY=value` lines, unquoting values.
pub(crate) fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let unquoted = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        out.insert(k.trim().to_owned(), unquoted.replace("\\\"", "\""));
    }
    out
}

fn looks_like_version(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Reads kernel, OS and hostname facts into `attrs`; `kernel_arch` is the
/// `uname -m` answer for kernels older than `/proc/sys/kernel/arch`.
pub(crate) fn fingerprint(
    ctx: &mut Ctx<'_>,
    kernel_arch: &str,
    attrs: &mut BTreeMap<String, String>,
) {
    let kernel = |name: &str| format!("sys/kernel/{name}");
    let ostype = ctx.roots.proc(&kernel("ostype"));
    if let Some(t) = ctx.required_attr(AREA, &ostype) {
        attrs.insert("kernel.name".into(), t.to_lowercase());
    }
    let osrelease = ctx.roots.proc(&kernel("osrelease"));
    if let Some(r) = ctx.required_attr(AREA, &osrelease) {
        attrs.insert("kernel.version".into(), short_kernel_version(&r).to_owned());
        attrs.insert("kernel.release".into(), r);
    }
    let arch = ctx
        .attr(AREA, &ctx.roots.proc(&kernel("arch")))
        .or_else(|| (!kernel_arch.is_empty()).then(|| kernel_arch.to_owned()));
    if let Some(a) = arch {
        attrs.insert("kernel.arch".into(), a);
    }
    let hostname = ctx.roots.proc(&kernel("hostname"));
    if let Some(h) = ctx.required_attr(AREA, &hostname) {
        attrs.insert("unique.hostname".into(), h);
    }

    // os-release(5): /etc/os-release, else /usr/lib/os-release.
    let mut os_release = ctx.roots.etc("os-release");
    let mut text = ctx.read(AREA, &os_release);
    if text.is_none() && os_release.symlink_metadata().is_err() {
        os_release = ctx.roots.map(Path::new("/usr/lib/os-release"));
        text = ctx.read_required(AREA, &os_release, crate::read::SMALL);
    }
    if let Some(text) = text {
        let fields = parse_os_release(&text);
        let id = fields.get("ID").map(|s| clean(s)).filter(|s| !s.is_empty());
        let mut version = fields
            .get("VERSION_ID")
            .map(|s| clean(s))
            .filter(|s| !s.is_empty());
        // Like Nomad (gopsutil), Debian's point release comes from debian_version.
        if matches!(id.as_deref(), Some("debian" | "raspbian"))
            && let Some(dv) = ctx.attr(AREA, &ctx.roots.etc("debian_version"))
            && looks_like_version(&dv)
        {
            version = Some(dv);
        }
        match id {
            Some(id) => {
                attrs.insert("os.name".into(), id);
            }
            None => ctx.warn(AREA, format!("{}: no ID", os_release.display())),
        }
        if let Some(v) = version {
            attrs.insert("os.version".into(), v);
        }
        if let Some(p) = fields
            .get("PRETTY_NAME")
            .map(|s| clean(s))
            .filter(|s| !s.is_empty())
        {
            attrs.insert("os.pretty_name".into(), p);
        }
    }
}

/// Total memory in bytes from `/proc/meminfo`, into `memory.totalbytes`.
pub(crate) fn memory(ctx: &mut Ctx<'_>, attrs: &mut BTreeMap<String, String>) -> u64 {
    let path = ctx.roots.proc("meminfo");
    let Some(text) = ctx.read_required("memory", &path, crate::read::SMALL) else {
        return 0;
    };
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        });
    match kb {
        Some(kb) if kb > 0 => {
            let bytes = kb.saturating_mul(1024);
            attrs.insert("memory.totalbytes".into(), bytes.to_string());
            bytes
        }
        _ => {
            ctx.warn("memory", format!("{}: no MemTotal", path.display()));
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(short_kernel_version("6.1.0-28-amd64"), "6.1.0");
        assert_eq!(short_kernel_version("6.6.51+rpt-rpi-v8"), "6.6.51");
        assert_eq!(short_kernel_version("5.15.148-tegra"), "5.15.148");
        assert_eq!(short_kernel_version("6.18.44"), "6.18.44");
    }

    #[test]
    fn os_release_quotes() {
        let f = parse_os_release(
            "# c\nNAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID='12'\nBAD LINE\n",
        );
        assert_eq!(f["NAME"], "Debian GNU/Linux");
        assert_eq!(f["ID"], "debian");
        assert_eq!(f["VERSION_ID"], "12");
        assert!(looks_like_version("12.11"));
        assert!(!looks_like_version("bookworm/sid"));
    }
}
