//! Just enough of the QEMU Machine Protocol to press the power button:
//! read the greeting, negotiate capabilities, `system_powerdown`. Every
//! read has a timeout and a line-length bound; asynchronous events that
//! arrive in between are skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Longest QMP line accepted.
const MAX_LINE: u64 = 64 * 1024;

/// Connects to `socket` and asks the guest to power down.
pub fn powerdown(socket: &Path, timeout: Duration) -> Result<(), String> {
    let stream = connect(socket)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let greeting = read_message(&mut reader)?;
    if greeting.get("QMP").is_none() {
        return Err(format!("not a QMP greeting: {greeting}"));
    }
    execute(&mut reader, &mut writer, "qmp_capabilities")?;
    execute(&mut reader, &mut writer, "system_powerdown")
}

/// Unix socket paths are limited to 107 bytes; a longer one is reached
/// through its directory's file descriptor.
fn connect(socket: &Path) -> Result<UnixStream, String> {
    let err = |e: std::io::Error| format!("connect: {e}");
    if socket.as_os_str().len() < 100 {
        return UnixStream::connect(socket).map_err(err);
    }
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Err("not a socket path".to_owned());
    };
    let dir = std::fs::File::open(dir).map_err(err)?;
    use std::os::fd::AsRawFd;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    UnixStream::connect(short).map_err(err)
}

fn execute(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    command: &str,
) -> Result<(), String> {
    let request = serde_json::json!({ "execute": command });
    writer
        .write_all(format!("{request}\r\n").as_bytes())
        .map_err(|e| format!("send {command}: {e}"))?;
    loop {
        let msg = read_message(reader)?;
        if msg.get("return").is_some() {
            return Ok(());
        }
        if let Some(e) = msg.get("error") {
            return Err(format!("{command}: {e}"));
        }
        // An event ({"event": ...}): not our answer.
    }
}

fn read_message(reader: &mut impl BufRead) -> Result<Value, String> {
    let mut line = String::new();
    let n = reader
        .take(MAX_LINE)
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("the monitor closed the connection".to_owned());
    }
    serde_json::from_str(line.trim()).map_err(|e| format!("bad QMP message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn skips_events_and_reads_the_answer() {
        let input = "{\"event\": \"POWERDOWN\", \"timestamp\": {}}\r\n{\"return\": {}}\r\n";
        let mut reader = Cursor::new(input.as_bytes().to_vec());
        let mut out = Vec::new();
        execute(&mut reader, &mut out, "system_powerdown").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"execute\":\"system_powerdown\"}\r\n"
        );
    }

    #[test]
    fn errors_and_eof_are_reported() {
        let mut reader = Cursor::new(b"{\"error\": {\"class\": \"GenericError\"}}\r\n".to_vec());
        assert!(
            execute(&mut reader, &mut Vec::new(), "x")
                .unwrap_err()
                .contains("GenericError")
        );
        let mut empty = Cursor::new(Vec::new());
        assert!(
            execute(&mut empty, &mut Vec::new(), "x")
                .unwrap_err()
                .contains("closed")
        );
        let mut garbage = Cursor::new(b"not json\n".to_vec());
        assert!(read_message(&mut garbage).unwrap_err().contains("bad QMP"));
    }
}
