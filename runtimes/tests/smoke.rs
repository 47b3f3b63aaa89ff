mod common;

use std::time::Duration;

use common::*;
use wren_runtimes::Driver;
use wren_runtimes::exec::ExecDriver;

#[test]
fn exec_runs_the_probe() {
    let Some(caps) = isolation_caps() else { return };
    let tmp = TempDir::new("smoke");
    let rt = runtime(&tmp.0, caps);
    let driver = ExecDriver::new(rt);
    let spec = spec(&tmp.0, &alloc_id("smoke"), "hello", "exec", probe(&["id"], &[]));
    let started = driver.start(&spec).unwrap();
    eprintln!("events: {:?}", started.events);
    let exit = block_on(driver.wait(&started.handle)).unwrap();
    let log = wait_for_text(&stdout_log(&spec), "uid=", Duration::from_secs(5));
    eprintln!("log: {log}");
    assert_eq!(exit.exit_code, 0, "{exit:?}");
    driver.destroy(&started.handle).unwrap();
}
