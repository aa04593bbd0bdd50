//! The data dir lock: one process owns a data dir at a time.
//!
//! ```text
//!  DirLock::acquire(dir) ─► create dir ─► open <dir>/lock (create, keep contents)
//!                        ─► flock(LOCK_EX | LOCK_NB) ─┬─ taken: write our pid ─► held until drop
//!                                                     └─ busy:  read holder's pid ─► Error::Locked
//! ```
//!
//! As Prometheus's tsdb `DirLocker` does (`fileutil.Flock` on `<dir>/lock`), the
//! lock is an advisory `flock` on a file in the directory, not the file's
//! existence: the kernel drops it when its holder exits, however it exits
//! (SIGKILL included), so a lock file left behind by a dead process is simply
//! taken over and its stale pid overwritten. The pid in the file is only there to
//! name the holder in the error.
//!
//! Unlike Prometheus, release does not remove the file: a process that opened the
//! file just before the holder removed it would lock the unlinked file while a
//! third locks a new one, and both would own the dir.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Name of the lock file inside the data dir.
pub const LOCK_FILE: &str = "lock";

/// An exclusive hold on a data dir; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    file: File,
}

impl DirLock {
    /// Creates `dir` if needed and locks it. Fails with [`Error::Locked`] if another
    /// open lock holds it, whether in another process or in this one: `flock`
    /// locks belong to the open file, so a second `acquire` in one process
    /// conflicts with the first too.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating data dir", dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening lock file", &path, e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                let pid = file.read_to_string(&mut holder).ok().and_then(|_| holder.trim().parse::<u32>().ok());
                return Err(Error::Locked { dir: dir.to_path_buf(), pid });
            }
            Err(e) => return Err(Error::io("locking", &path, e.into())),
        }
        // Ours now: replace whatever a dead holder left with our pid.
        let pid = format!("{}\n", std::process::id());
        (|| {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(pid.as_bytes())?;
            file.sync_data()
        })()
        .map_err(|e| Error::io("writing lock file", &path, e))?;
        Ok(DirLock { dir: dir.to_path_buf(), file })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Clear the pid so a reader racing the release does not name a process
        // that no longer holds the dir; closing the file (after this) releases
        // the lock.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_holder_and_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DirLock::acquire(&data).unwrap();
        let held = std::fs::read_to_string(data.join(LOCK_FILE)).unwrap();
        assert_eq!(held.trim(), std::process::id().to_string());
        match DirLock::acquire(&data) {
            Err(Error::Locked { dir, pid }) => {
                assert_eq!(dir, data);
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        let again = DirLock::acquire(&data).unwrap();
        assert_eq!(again.dir(), data);
    }

    #[tokio::test]
    async fn a_second_tsdb_on_one_dir_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = crate::Tsdb::open(dir.path(), Default::default()).unwrap();
        std::fs::write(dir.path().join("head_chunks").join("canary"), b"kept").unwrap();
        match crate::Tsdb::open(dir.path(), Default::default()) {
            Err(Error::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        // The refused open touched nothing: head_chunks/ was not cleared.
        assert_eq!(std::fs::read(dir.path().join("head_chunks").join("canary")).unwrap(), b"kept");
        drop(first);
        crate::Tsdb::open(dir.path(), Default::default()).unwrap();
    }

    #[test]
    fn a_stale_pid_left_by_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "4194305\nleftover bytes of a longer pid\n").unwrap();
        let _lock = DirLock::acquire(dir.path()).unwrap();
        let held = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(held, format!("{}\n", std::process::id()));
    }

    #[test]
    fn the_error_names_the_dir_and_the_pid() {
        let e = Error::Locked { dir: PathBuf::from("./data"), pid: Some(1234) };
        assert_eq!(
            e.to_string(),
            "data dir ./data is locked by another strata (pid 1234); stop it or use another --data-dir"
        );
        let e = Error::Locked { dir: PathBuf::from("./data"), pid: None };
        assert_eq!(
            e.to_string(),
            "data dir ./data is locked by another strata (pid unknown); stop it or use another --data-dir"
        );
    }
}
