//! The USB device above a class device in sysfs (a tty's adapter, a
//! camera), with its ids and strings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::read::Ctx;

const AREA: &str = "usb";

/// A USB device as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Usb {
    /// Its sysfs directory (canonical).
    pub dir: PathBuf,
    /// The port path, e.g. `1-1.3`: stable while it stays in that port.
    pub port: String,
    /// The interface directory on the way down, e.g. `1-1.3:1.0`.
    pub interface: Option<String>,
    pub vendor_id: String,
    pub product_id: String,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
}

impl Usb {
    /// Attributes identical across identical devices.
    pub fn model_attributes(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert("usb.vendor_id".into(), self.vendor_id.clone());
        a.insert("usb.product_id".into(), self.product_id.clone());
        if let Some(m) = &self.manufacturer {
            a.insert("manufacturer".into(), m.clone());
        }
        if let Some(p) = &self.product {
            a.insert("product".into(), p.clone());
        }
        a
    }

    /// The group name: the product string, else `vendor:product`.
    pub fn model_name(&self) -> String {
        self.product
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.vendor_id, self.product_id))
    }
}

/// Walks up from `device_dir` (canonical) to the USB device holding it,
/// never leaving `sys_root` (canonical).
pub(crate) fn find(ctx: &mut Ctx<'_>, sys_root: &Path, device_dir: &Path) -> Option<Usb> {
    let mut below: Option<&Path> = None;
    for dir in device_dir.ancestors() {
        if !dir.starts_with(sys_root) || dir == sys_root {
            return None;
        }
        if dir.join("idVendor").is_file() {
            let vendor_id = ctx.attr(AREA, &dir.join("idVendor"))?;
            let product_id = ctx.attr(AREA, &dir.join("idProduct")).unwrap_or_default();
            let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
            return Some(Usb {
                dir: dir.to_path_buf(),
                port: name(dir).unwrap_or_default(),
                interface: below.and_then(name).filter(|n| n.contains(':')),
                vendor_id,
                product_id,
                serial: ctx.attr(AREA, &dir.join("serial")),
                manufacturer: ctx.attr(AREA, &dir.join("manufacturer")),
                product: ctx.attr(AREA, &dir.join("product")),
            });
        }
        below = Some(dir);
    }
    None
}
