//! A task program for the runtimes tests (not shipped with wren). Each
//! subcommand is one action a hostile or observable task takes, and prints
//! one line that tests can match exactly, e.g. `write /etc/x: EACCES`.
//!
//! ```text
//! write PATH          create and write a file
//! read PATH           read a file or list a directory
//! open PATH           open a file (device) read-write and write one byte
//! mknod PATH MAJ MIN  create a character device
//! pids                list the process ids this task can see in /proc
//! alloc MB            allocate and touch MB megabytes, then sleep
//! spin THREADS        burn THREADS cpus forever
//! forkbomb            spawn copies of itself until the pids limit stops it
//! ignore-term N       block SIGTERM, start N children that do too, sleep
//! count MS            print a counter every MS milliseconds, forever
//! exit-when PATH CODE wait for PATH to exist, then exit with CODE
//! id                  print uid and gid
//! spew MB             write MB megabytes of lines to stdout, exit
//! sleep               sleep forever
//! ```
//!
//! Several commands run in order when separated by `--`; the exit code is
//! the last one's.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

fn errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

fn report(what: &str, r: std::io::Result<()>) -> ExitCode {
    match r {
        Ok(()) => {
            println!("{what}: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{what}: {}", errno(&e));
            ExitCode::FAILURE
        }
    }
}

fn forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i).map(String::as_str).unwrap_or("")
}

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let mut code = ExitCode::SUCCESS;
    for command in all.split(|a| a == "--") {
        code = run(command);
        let _ = std::io::stdout().flush();
    }
    code
}

fn run(args: &[String]) -> ExitCode {
    match arg(args, 0) {
        "write" => {
            let path = arg(args, 1);
            report(&format!("write {path}"), std::fs::write(path, b"probe\n"))
        }
        "read" => {
            let path = Path::new(arg(args, 1));
            let r = if path.is_dir() {
                std::fs::read_dir(path).map(drop)
            } else {
                std::fs::File::open(path)
                    .and_then(|mut f| f.read(&mut [0u8; 16]))
                    .map(drop)
            };
            report(&format!("read {}", path.display()), r)
        }
        "open" => {
            let path = arg(args, 1);
            let r = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map(drop);
            report(&format!("open {path}"), r)
        }
        "mknod" => {
            let path = arg(args, 1);
            let major: u64 = arg(args, 2).parse().unwrap_or(1);
            let minor: u64 = arg(args, 3).parse().unwrap_or(3);
            let r = nix::sys::stat::mknod(
                path,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(major, minor),
            )
            .map_err(std::io::Error::from);
            report(&format!("mknod {path}"), r)
        }
        "pids" => {
            let mut pids: Vec<u32> = std::fs::read_dir("/proc")
                .map(|d| {
                    d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            pids.sort();
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            println!("pids: {}", list.join(","));
            ExitCode::SUCCESS
        }
        "alloc" => {
            let mb: usize = arg(args, 1).parse().unwrap_or(64);
            let mut held: Vec<Vec<u8>> = Vec::new();
            for i in 1..=mb {
                // Touch every page so it is really charged.
                held.push(vec![0x5a; 1 << 20]);
                if i % 16 == 0 {
                    println!("allocated {i} MB");
                }
            }
            println!("allocated all {mb} MB");
            let _ = std::io::stdout().flush();
            let _keep = held;
            forever()
        }
        "spin" => {
            let threads: usize = arg(args, 1).parse().unwrap_or(1);
            for _ in 1..threads {
                std::thread::spawn(|| {
                    let mut x = 0u64;
                    loop {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                });
            }
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "forkbomb" => {
            let me = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            let mut reported = false;
            loop {
                match Command::new(&me).arg("forkbomb").spawn() {
                    Ok(_child) => {}
                    Err(e) => {
                        if !reported {
                            println!("forkbomb: spawn failed: {}", errno(&e));
                            let _ = std::io::stdout().flush();
                            reported = true;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        "ignore-term" => {
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(nix::sys::signal::Signal::SIGTERM);
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_BLOCK,
                Some(&set),
                None,
            );
            let n: usize = arg(args, 1).parse().unwrap_or(0);
            let me = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            let mut children = Vec::new();
            for _ in 0..n {
                match Command::new(&me).args(["ignore-term", "0"]).spawn() {
                    Ok(c) => children.push(c.id().to_string()),
                    Err(e) => println!("ignore-term: spawn failed: {}", errno(&e)),
                }
            }
            if n == 0 {
                println!("child ignoring SIGTERM");
            } else {
                // Printed once every child runs: tests wait for this line.
                println!("ignoring SIGTERM, children: {}", children.join(","));
            }
            let _ = std::io::stdout().flush();
            forever()
        }
        "count" => {
            let ms: u64 = arg(args, 1).parse().unwrap_or(50);
            let mut i = 0u64;
            loop {
                println!("count {i}");
                let _ = std::io::stdout().flush();
                i += 1;
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
        "exit-when" => {
            let path = Path::new(arg(args, 1));
            let code: u8 = arg(args, 2).parse().unwrap_or(1);
            while !path.exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("exiting with {code}");
            ExitCode::from(code)
        }
        "id" => {
            println!(
                "uid={} gid={}",
                nix::unistd::getuid(),
                nix::unistd::getgid()
            );
            ExitCode::SUCCESS
        }
        "spew" => {
            let mb: usize = arg(args, 1).parse().unwrap_or(1);
            let line = [b'x'; 1023];
            let mut out = std::io::stdout().lock();
            for _ in 0..mb * 1024 {
                let _ = out.write_all(&line);
                let _ = out.write_all(b"\n");
            }
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        "sleep" => forever(),
        other => {
            eprintln!("wren-task-probe: unknown command {other:?}");
            ExitCode::from(2)
        }
    }
}
