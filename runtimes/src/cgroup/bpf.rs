//! Device rules for cgroup v2, which has no devices controller: a small
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program, written here instruction by
//! instruction, that allows exactly the listed devices and denies every
//! other open and mknod in the cgroup. No BPF toolchain, no maps.
//!
//! The program, for each rule:
//!
//! ```text
//! if type != rule.type   goto next
//! if major != rule.major goto next
//! if minor != rule.minor goto next
//! if access & !rule.access goto next
//! return 1               // allow
//! next: ...
//! return 0               // deny
//! ```

use std::os::fd::AsRawFd;
use std::path::Path;

use super::DeviceRule;
use super::fsio::CgroupError;

const BPF_PROG_LOAD: nix::libc::c_int = 5;
const BPF_PROG_ATTACH: nix::libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Coexist with programs a service manager attached higher up.
const BPF_F_ALLOW_MULTI: u32 = 2;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    // The register nibbles of a little-endian target: dst low, src high.
    #[cfg(target_endian = "little")]
    let regs = (src << 4) | (dst & 0x0f);
    #[cfg(target_endian = "big")]
    let regs = (dst << 4) | (src & 0x0f);
    Insn {
        code,
        regs,
        off,
        imm,
    }
}

/// `dst = *(u32 *)(src + off)`.
fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0)
}
/// `dst = src` (64 bit).
fn mov_reg(dst: u8, src: u8) -> Insn {
    insn(0xbf, dst, src, 0, 0)
}
/// `dst = imm` (64 bit).
fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// `dst &= imm` (64 bit).
fn and_imm(dst: u8, imm: i32) -> Insn {
    insn(0x57, dst, 0, 0, imm)
}
/// `dst >>= imm` (64 bit).
fn rsh_imm(dst: u8, imm: i32) -> Insn {
    insn(0x77, dst, 0, 0, imm)
}
/// `if dst != imm goto pc + 1 + off`.
fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm)
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}

/// The program allowing exactly `rules`.
pub(crate) fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    // r1: struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    let mut p = vec![
        load_u32(2, 1, 0), // r2 = access_type
        mov_reg(3, 2),
        and_imm(3, 0xffff), // r3 = device type
        rsh_imm(2, 16),     // r2 = access
        load_u32(4, 1, 4),  // r4 = major
        load_u32(5, 1, 8),  // r5 = minor
    ];
    for r in rules {
        let kind = if r.block { DEV_BLOCK } else { DEV_CHAR };
        let mut allowed = ACC_READ | ACC_WRITE;
        if r.mknod {
            allowed |= ACC_MKNOD;
        }
        // Eight instructions per rule; a failed test jumps to the next rule.
        p.extend([
            jne_imm(3, kind, 7),
            jne_imm(4, r.major as i32, 6),
            jne_imm(5, r.minor as i32, 5),
            mov_reg(6, 2),
            and_imm(6, !allowed & 0xffff),
            jne_imm(6, 0, 2),
            mov_imm(0, 1),
            exit(),
        ]);
    }
    p.extend([mov_imm(0, 0), exit()]);
    p
}

#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn load(program: &[Insn]) -> Result<std::os::fd::OwnedFd, nix::errno::Errno> {
    let license = c"Apache-2.0";
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
    };
    crate::sys::bpf_fd(BPF_PROG_LOAD, &attr)
}

/// Whether this kernel loads device programs (cgroup BPF built in, and the
/// caller may use BPF).
pub(crate) fn supported() -> bool {
    load(&[mov_imm(0, 1), exit()]).is_ok()
}

/// Loads the program for `rules` and attaches it to the cgroup `dir`. The
/// attachment keeps the program alive until the cgroup is removed.
pub(crate) fn attach(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let err = |what: &str, e: nix::errno::Errno| CgroupError::Write {
        path: dir.to_owned(),
        value: format!("bpf device program ({what})"),
        source: e.into(),
    };
    let prog = load(&program(rules)).map_err(|e| err("load", e))?;
    let cgroup = std::fs::File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    crate::sys::bpf(BPF_PROG_ATTACH, &attr).map_err(|e| err("attach", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_is_eight_instructions_between_a_prologue_and_a_deny() {
        let rules = [
            DeviceRule {
                block: false,
                major: 1,
                minor: 3,
                mknod: true,
            },
            DeviceRule {
                block: true,
                major: 8,
                minor: 0,
                mknod: false,
            },
        ];
        let p = program(&rules);
        assert_eq!(p.len(), 6 + 8 * 2 + 2);
        // The second rule: a block device, read and write only.
        assert_eq!(p[14], jne_imm(3, DEV_BLOCK, 7));
        assert_eq!(p[15].imm, 8);
        assert_eq!(p[18], and_imm(6, !(ACC_READ | ACC_WRITE) & 0xffff));
        // Every jump lands on the next rule's first instruction or the deny.
        for (i, ins) in p.iter().enumerate() {
            if ins.code == 0x55 {
                let target = i as i64 + 1 + i64::from(ins.off);
                assert!(
                    target == 6 + 8 || target == 6 + 16,
                    "jump at {i} to {target}"
                );
            }
        }
        assert_eq!(p[p.len() - 2], mov_imm(0, 0));
        assert_eq!(p[p.len() - 1], exit());
    }

    #[test]
    fn register_nibbles() {
        let i = load_u32(2, 1, 4);
        assert_eq!((i.code, i.regs, i.off), (0x61, 0x12, 4));
    }
}
