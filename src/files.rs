//! Reading files an operator or writer controls, safely: regular files only (never blocking on a
//! FIFO or reading a device), and never more than a bound, whatever the file claims.

use crate::model::ReasonCode;
use std::fs::{Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// This machine's (or pod's) host name, from the kernel; empty where it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// Reads a regular file of at most `max` bytes as UTF-8, without blocking on FIFOs or devices
/// and without reading more than `max + 1` bytes whatever the file claims. The error is a reason
/// code and a message.
pub fn read_bounded(path: &Path, max: u64) -> Result<String, (ReasonCode, String)> {
    let unreadable = |message: String| (ReasonCode::Unreadable, message);
    // Non-blocking, so opening a FIFO does not wait for a writer; it changes nothing for files.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| unreadable(format!("cannot open: {e}")))?;
    let metadata = file.metadata().map_err(|e| unreadable(format!("cannot stat: {e}")))?;
    if !metadata.is_file() {
        return Err(unreadable(format!("not a regular file but {}", file_kind(&metadata))));
    }
    let too_large =
        |size: u64| (ReasonCode::TooLarge, format!("the file is {size} bytes, over the limit of {max} bytes"));
    if metadata.len() > max {
        return Err(too_large(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    Read::take(&file, max + 1).read_to_end(&mut bytes).map_err(|e| unreadable(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes)
        .map_err(|e| unreadable(format!("not UTF-8 text: invalid byte at offset {}", e.utf8_error().valid_up_to())))
}

/// What changes when a file is edited or replaced (ConfigMap and Secret mounts swap a link):
/// its size, modification time and inode.
pub fn fingerprint(path: &Path) -> Option<(u64, std::time::SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?, meta.ino()))
}

fn file_kind(metadata: &Metadata) -> &'static str {
    let kind = metadata.file_type();
    match () {
        _ if kind.is_dir() => "a directory",
        _ if kind.is_fifo() => "a FIFO",
        _ if kind.is_char_device() => "a character device",
        _ if kind.is_block_device() => "a block device",
        _ if kind.is_socket() => "a socket",
        _ => "a special file",
    }
}
