//! Buses and chips a sensor hangs off: i2c buses (`/dev/i2c-N`, from
//! `/sys/class/i2c-dev`), spidev devices (`/dev/spidevB.C`, from
//! `/sys/class/spidev`) and GPIO chips (`/dev/gpiochipN`, from
//! `/sys/bus/gpio/devices`, with label and line count from the legacy
//! `/sys/class/gpio/gpiochip<base>` entry of the same controller). Each is
//! its own group, `linux/<type>/<kernel name>`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Found, dev_node, device_name, instance};
use crate::read::Ctx;

/// The name of the directory `link` resolves to (its controller).
fn target_name(ctx: &mut Ctx<'_>, area: &str, link: PathBuf) -> String {
    ctx.canonical(area, &link)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

fn i2c(ctx: &mut Ctx<'_>, out: &mut Vec<Found>) {
    const AREA: &str = "i2c";
    let class = ctx.roots.sys("class/i2c-dev");
    for (name, entry) in ctx.device_dirs(AREA, &class) {
        let mut attributes = BTreeMap::new();
        if let Some(adapter) = ctx.attr(AREA, &entry.join("name")) {
            attributes.insert("adapter".to_owned(), adapter);
        }
        if let Some(bus) = name.strip_prefix("i2c-") {
            attributes.insert("bus".to_owned(), bus.to_owned());
        }
        let locality = target_name(ctx, AREA, entry.join("device/.."));
        let path = dev_node(ctx, &entry, &name);
        out.push(Found {
            vendor: "linux".into(),
            device_type: "i2c",
            name: device_name(&name),
            attributes,
            instance: instance(ctx, name, locality, vec![path]),
        });
    }
}

fn spi(ctx: &mut Ctx<'_>, out: &mut Vec<Found>) {
    const AREA: &str = "spi";
    let class = ctx.roots.sys("class/spidev");
    for (name, entry) in ctx.device_dirs(AREA, &class) {
        let mut attributes = BTreeMap::new();
        if let Some((bus, cs)) = name.strip_prefix("spidev").and_then(|r| r.split_once('.')) {
            attributes.insert("bus".to_owned(), bus.to_owned());
            attributes.insert("chip_select".to_owned(), cs.to_owned());
        }
        let locality = target_name(ctx, AREA, entry.join("device"));
        let path = dev_node(ctx, &entry, &name);
        out.push(Found {
            vendor: "linux".into(),
            device_type: "spi",
            name: device_name(&name),
            attributes,
            instance: instance(ctx, name, locality, vec![path]),
        });
    }
}

fn gpio(ctx: &mut Ctx<'_>, out: &mut Vec<Found>) {
    const AREA: &str = "gpio";
    // Label and line count live on the legacy class entry of the same controller.
    let legacy = ctx.roots.sys("class/gpio");
    let mut by_controller: BTreeMap<PathBuf, (Option<String>, Option<String>)> = BTreeMap::new();
    for (name, entry) in ctx.device_dirs(AREA, &legacy) {
        if !name.starts_with("gpiochip") {
            continue;
        }
        let Some(controller) = ctx.canonical(AREA, &entry.join("device")) else {
            continue;
        };
        let label = ctx.attr(AREA, &entry.join("label"));
        let lines = ctx.attr(AREA, &entry.join("ngpio"));
        by_controller.insert(controller, (label, lines));
    }
    let bus = ctx.roots.sys("bus/gpio/devices");
    for (name, entry) in ctx.device_dirs(AREA, &bus) {
        if !name.starts_with("gpiochip") {
            continue;
        }
        let controller = ctx.canonical(AREA, &entry.join(".."));
        let mut attributes = BTreeMap::new();
        if let Some((label, lines)) = controller.as_ref().and_then(|c| by_controller.get(c)) {
            if let Some(l) = label {
                attributes.insert("label".to_owned(), l.clone());
            }
            if let Some(n) = lines {
                attributes.insert("lines".to_owned(), n.clone());
            }
        }
        let locality = controller
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let path = dev_node(ctx, &entry, &name);
        out.push(Found {
            vendor: "linux".into(),
            device_type: "gpio",
            name: device_name(&name),
            attributes,
            instance: instance(ctx, name, locality, vec![path]),
        });
    }
}

pub(crate) fn find(ctx: &mut Ctx<'_>, out: &mut Vec<Found>) {
    i2c(ctx, out);
    spi(ctx, out);
    gpio(ctx, out);
}
