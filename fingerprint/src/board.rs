//! Board identity: the device tree's `model` and `compatible` on ARM
//! boards, DMI (`/sys/class/dmi/id`) on PCs and servers.

use std::collections::BTreeMap;

use crate::read::{Ctx, clean};

const AREA: &str = "board";

/// Placeholders firmware writes where the vendor left a DMI field empty.
const DMI_PLACEHOLDERS: &[&str] = &[
    "To Be Filled By O.E.M.",
    "To be filled by O.E.M.",
    "Default string",
    "System Product Name",
    "System manufacturer",
    "Not Specified",
    "Not Applicable",
    "None",
    "O.E.M.",
    "0123456789",
];

/// What other facts need from the board.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Board {
    /// The device tree's root `compatible` list, most specific first.
    pub compatible: Vec<String>,
}

impl Board {
    /// Whether the root is compatible with `prefix*` (e.g. `nvidia,tegra`).
    pub fn compatible_with(&self, prefix: &str) -> Option<&str> {
        self.compatible
            .iter()
            .map(String::as_str)
            .find(|c| c.starts_with(prefix))
    }
}

/// Splits a device tree `compatible` list (NUL separated), keeping only
/// well-formed entries (`vendor,model` in ASCII).
pub(crate) fn dt_strings(raw: &str) -> Vec<String> {
    let well_formed = |s: &&str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b",._+-".contains(&b))
    };
    raw.split('\0')
        .filter(well_formed)
        .map(str::to_owned)
        .collect()
}

fn dmi(ctx: &mut Ctx<'_>, field: &str) -> Option<String> {
    let v = ctx.attr(AREA, &ctx.roots.sys(&format!("class/dmi/id/{field}")))?;
    (!DMI_PLACEHOLDERS.contains(&v.as_str())).then_some(v)
}

/// Reads `board.*` attributes.
pub(crate) fn fingerprint(ctx: &mut Ctx<'_>, attrs: &mut BTreeMap<String, String>) -> Board {
    let base = ctx.roots.sys("firmware/devicetree/base");
    let compatible = ctx
        .read(AREA, &base.join("compatible"))
        .map(|s| dt_strings(&s))
        .unwrap_or_default();
    let model = ctx
        .read(AREA, &base.join("model"))
        .map(|s| clean(&s))
        .filter(|s| !s.is_empty());
    if model.is_some() || !compatible.is_empty() {
        if let Some(m) = model {
            attrs.insert("board.model".into(), m);
        }
        if let Some(first) = compatible.first() {
            let vendor = first.split_once(',').map_or(first.as_str(), |(v, _)| v);
            attrs.insert("board.vendor".into(), vendor.to_owned());
            attrs.insert("board.compatible".into(), first.clone());
        }
        if let Some(soc) = compatible.last() {
            attrs.insert("board.soc".into(), soc.clone());
        }
        let serial = ctx
            .read(AREA, &base.join("serial-number"))
            .map(|s| clean(&s));
        if let Some(s) = serial.filter(|s| !s.is_empty()) {
            attrs.insert("unique.board.serial".into(), s);
        }
        return Board { compatible };
    }
    let vendor = dmi(ctx, "sys_vendor").or_else(|| dmi(ctx, "board_vendor"));
    let model = dmi(ctx, "product_name").or_else(|| dmi(ctx, "board_name"));
    if let Some(v) = vendor {
        attrs.insert("board.vendor".into(), v);
    }
    if let Some(m) = model {
        attrs.insert("board.model".into(), m);
    }
    if let Some(s) = dmi(ctx, "product_serial") {
        attrs.insert("unique.board.serial".into(), s);
    }
    Board::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tree_string_lists() {
        assert_eq!(
            dt_strings("raspberrypi,4-model-b\0brcm,bcm2711\0\u{fffd}\0"),
            ["raspberrypi,4-model-b", "brcm,bcm2711"]
        );
        let b = Board {
            compatible: dt_strings(
                "nvidia,p3737-0000+p3701-0005\0nvidia,p3701-0005\0nvidia,tegra234\0",
            ),
        };
        assert_eq!(b.compatible_with("nvidia,tegra"), Some("nvidia,tegra234"));
        assert_eq!(b.compatible_with("brcm,"), None);
    }
}
