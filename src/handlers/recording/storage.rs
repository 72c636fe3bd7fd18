//! The recordings folder: what counts as already downloaded, and writing a download so the
//! API never sees a partial file.
//!
//! A body is streamed into a hidden, uniquely named temporary file in the same folder
//! (`.<call_sid>.<uuid>.part`, made by `tempfile`'s `Builder::tempfile_in`, created
//! exclusively), capped at a maximum size, flushed and fsynced, then renamed over
//! `<call_sid>.mp3` (`TempPath::persist`: atomic on one filesystem), and the folder is
//! fsynced. A temporary file that is not committed is removed when its [`TempRecording`] is
//! dropped, whatever the reason (error, cap, cancellation, panic). Two jobs for the same call
//! each write their own temporary file; whichever renames last wins with a complete file.
//!
//! A worker killed mid-download (kill -9, power loss) cannot remove its temporary file; the
//! first download of the next process sweeps such leftovers ([`sweep_stale_temp_files`]).
//!
//! Memory per download stays small and flat: writes go through tokio's `BufWriter` of
//! [`COALESCE_BYTES`], so a body arriving in small pieces costs one file write per 64 KiB,
//! and a larger chunk goes past the buffer to the file.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tempfile::TempPath;
use tokio::fs;
use tokio::io::{AsyncWriteExt, BufWriter};

use super::params::Sid;

/// A file of this many bytes or fewer counts as missing (the API's `check_local_recording_exists`).
pub const MIN_VALID_BYTES: u64 = 1000;
/// Size of the write buffer: chunks smaller than this are gathered up to it before a write.
pub const COALESCE_BYTES: usize = 64 * 1024;

/// A temporary file not modified for this long belongs to no live download: a live one
/// writes at least once per request timeout (30 s by default) or gives up.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Removes the temporary files of this module (`.<call_sid>.<32 hex>.part`, see
/// [`is_temp_file_name`]) in `dir` that were not modified for `older_than`: what a killed
/// worker left behind. No other file is touched, and a missing folder is not an error.
/// Returns how many files were removed.
pub async fn sweep_stale_temp_files(dir: &Path, older_than: Duration) -> io::Result<usize> {
    let dir = dir.to_path_buf();
    blocking(move || {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_str().is_some_and(is_temp_file_name) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            if meta.is_file()
                && age.is_some_and(|a| a >= older_than)
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    })
    .await
}

/// True for the names [`TempRecording::create`] gives: `.` + a call SID + `.` + 32 hex
/// digits + `.part`.
pub fn is_temp_file_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".part")) else {
        return false;
    };
    match inner.split_once('.') {
        Some((sid, id)) => {
            Sid::parse("CA", sid).is_some()
                && id.len() == 32
                && id.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Why a chunk could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The body grew past the size cap.
    #[error("recording larger than the {max}-byte cap")]
    TooLarge {
        /// The cap.
        max: u64,
    },
    /// The filesystem failed.
    #[error("cannot write the recording: {0}")]
    Io(#[from] io::Error),
}

/// `<dir>/<call_sid>.mp3`, the path the API serves.
pub fn final_path(dir: &Path, call_sid: &Sid) -> PathBuf {
    dir.join(format!("{call_sid}.mp3"))
}

/// The size of the recording already in place, when it counts as downloaded (over
/// [`MIN_VALID_BYTES`]).
pub async fn cached_size(dir: &Path, call_sid: &Sid) -> Option<u64> {
    let meta = fs::metadata(final_path(dir, call_sid)).await.ok()?;
    (meta.is_file() && meta.len() > MIN_VALID_BYTES).then_some(meta.len())
}

/// A download in progress. Removed on drop unless committed.
#[derive(Debug)]
pub struct TempRecording {
    /// The buffered file (declared first: closed before the path removes the file on drop);
    /// `None` after commit.
    writer: Option<BufWriter<fs::File>>,
    /// The temporary file's path, removed on drop unless persisted.
    temp: Option<TempPath>,
    /// Where it is, kept for [`TempRecording::path`].
    path: PathBuf,
    dir: PathBuf,
    /// Bytes accepted so far (written or buffered).
    written: u64,
    max_bytes: u64,
}

impl TempRecording {
    /// Creates the folder if needed and a new temporary file in it for `call_sid`,
    /// `.<call_sid>.<uuid>.part` (one trip to the blocking pool).
    pub async fn create(dir: &Path, call_sid: &Sid, max_bytes: u64) -> io::Result<Self> {
        // The uuid is the random part (tempfile's own is turned off): the name keeps the
        // shape the stale sweep recognises ([`is_temp_file_name`]).
        let prefix = format!(".{call_sid}.{}", uuid::Uuid::new_v4().simple());
        let folder = dir.to_path_buf();
        let (file, temp) = blocking(move || {
            std::fs::create_dir_all(&folder)?;
            let named = tempfile::Builder::new()
                .prefix(&prefix)
                .suffix(".part")
                .rand_bytes(0)
                .tempfile_in(&folder)?;
            Ok(named.into_parts())
        })
        .await?;
        let path = temp.to_path_buf();
        Ok(Self {
            writer: Some(BufWriter::with_capacity(
                COALESCE_BYTES,
                fs::File::from_std(file),
            )),
            temp: Some(temp),
            path,
            dir: dir.to_path_buf(),
            written: 0,
            max_bytes,
        })
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends a chunk; fails without writing it when the cap would be exceeded.
    pub async fn write_chunk(&mut self, chunk: Bytes) -> Result<(), WriteError> {
        let total = self.written.saturating_add(chunk.len() as u64);
        if total > self.max_bytes {
            return Err(WriteError::TooLarge {
                max: self.max_bytes,
            });
        }
        self.writer
            .as_mut()
            .ok_or_else(|| io::Error::other("temporary file already closed"))?
            .write_all(&chunk)
            .await?;
        self.written = total;
        Ok(())
    }

    /// Writes what is buffered, fsyncs the file, renames it to `target` and fsyncs the
    /// folder. Returns the number of bytes.
    pub async fn commit(mut self, target: &Path) -> io::Result<u64> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| io::Error::other("temporary file already closed"))?;
        writer.flush().await?;
        let file = writer.into_inner();
        file.sync_all().await?;
        drop(file);
        let temp = self
            .temp
            .take()
            .ok_or_else(|| io::Error::other("temporary file already committed"))?;
        let (to, dir) = (target.to_path_buf(), self.dir.clone());
        // After a failed rename the temporary path comes back in the error and is removed
        // when dropped; after the rename nothing is left to clean up, even if syncing the
        // folder fails.
        blocking(move || {
            temp.persist(&to).map_err(|e| e.error)?;
            std::fs::File::open(&dir).and_then(|d| d.sync_all())
        })
        .await?;
        Ok(self.written)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> Sid {
        Sid::parse("CA", "CA0123456789abcdef0123456789abcdef").unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn temp_file_names_are_recognised_strictly() {
        let id = "0123456789abcdef0123456789abcdef";
        assert!(is_temp_file_name(&format!(".{}.{id}.part", sid())));
        for other in [
            format!("{}.mp3", sid()),
            format!(".{}.{id}.mp3", sid()),
            format!("{}.{id}.part", sid()),
            format!(".{}.short.part", sid()),
            format!(".CAnothex.{id}.part"),
            ".part".to_string(),
            format!(".{}.part", sid()),
        ] {
            assert!(!is_temp_file_name(&other), "{other}");
        }
    }

    #[tokio::test]
    async fn the_sweep_removes_only_old_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let old_temp = dir
            .path()
            .join(format!(".{}.0123456789abcdef0123456789abcdef.part", sid()));
        let hour_ago = SystemTime::now() - Duration::from_secs(7200);
        for path in [&old_temp, &dir.path().join("notes.part")] {
            let f = std::fs::File::create(path).unwrap();
            f.set_modified(hour_ago).unwrap();
        }
        let live = TempRecording::create(dir.path(), &sid(), 10_000)
            .await
            .unwrap();
        let removed = sweep_stale_temp_files(dir.path(), STALE_TEMP_AGE)
            .await
            .unwrap();
        assert_eq!(removed, 1);
        assert!(!old_temp.exists());
        assert!(live.path().exists(), "a fresh temporary file is kept");
        assert!(dir.path().join("notes.part").exists(), "not ours: kept");
        let missing = dir.path().join("missing");
        assert_eq!(
            sweep_stale_temp_files(&missing, STALE_TEMP_AGE)
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn commit_renames_atomically_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = final_path(dir.path(), &sid());
        let mut t = TempRecording::create(dir.path(), &sid(), 10_000)
            .await
            .unwrap();
        assert!(t
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".CA"));
        t.write_chunk(Bytes::from(vec![1u8; 700])).await.unwrap();
        t.write_chunk(Bytes::from(vec![2u8; 700])).await.unwrap();
        assert!(!target.exists(), "nothing visible before commit");
        assert_eq!(t.commit(&target).await.unwrap(), 1400);
        assert_eq!(std::fs::read(&target).unwrap().len(), 1400);
        assert_eq!(entries(dir.path()), [format!("{}.mp3", sid())]);
        assert_eq!(cached_size(dir.path(), &sid()).await, Some(1400));
    }

    #[tokio::test]
    async fn a_failed_rename_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory in the way: the rename fails.
        let target = final_path(dir.path(), &sid());
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("x"), b"x").unwrap();
        let mut t = TempRecording::create(dir.path(), &sid(), 10_000)
            .await
            .unwrap();
        assert!(is_temp_file_name(
            &t.path().file_name().unwrap().to_string_lossy()
        ));
        t.write_chunk(Bytes::from(vec![1u8; 1200])).await.unwrap();
        assert!(t.commit(&target).await.is_err());
        assert_eq!(entries(dir.path()), [format!("{}.mp3", sid())]);
    }

    #[tokio::test]
    async fn small_and_large_chunks_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let target = final_path(dir.path(), &sid());
        let mut t = TempRecording::create(dir.path(), &sid(), 1 << 30)
            .await
            .unwrap();
        let mut expected = Vec::new();
        // Small pieces (gathered), one that overflows the gathering buffer, large ones (direct).
        let sizes = [1usize, 500, 7000, 60_000, COALESCE_BYTES, 3, 200_000, 10, 5];
        for (i, n) in sizes.iter().enumerate() {
            let piece: Vec<u8> = (0..*n).map(|j| (i * 31 + j) as u8).collect();
            expected.extend_from_slice(&piece);
            t.write_chunk(Bytes::from(piece)).await.unwrap();
        }
        assert_eq!(t.written(), expected.len() as u64);
        assert_eq!(t.commit(&target).await.unwrap(), expected.len() as u64);
        assert_eq!(std::fs::read(&target).unwrap(), expected);
    }

    #[tokio::test]
    async fn cap_and_drop_remove_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TempRecording::create(dir.path(), &sid(), 1500)
            .await
            .unwrap();
        t.write_chunk(Bytes::from(vec![0u8; 1000])).await.unwrap();
        assert!(matches!(
            t.write_chunk(Bytes::from(vec![0u8; 501])).await,
            Err(WriteError::TooLarge { max: 1500 })
        ));
        assert_eq!(t.written(), 1000);
        drop(t);
        assert!(entries(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn small_files_do_not_count_and_folder_is_created() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("nested/recordings");
        assert_eq!(cached_size(&dir, &sid()).await, None);
        let t = TempRecording::create(&dir, &sid(), 10).await.unwrap();
        drop(t);
        std::fs::write(final_path(&dir, &sid()), [0u8; 1000]).unwrap();
        assert_eq!(cached_size(&dir, &sid()).await, None);
        std::fs::write(final_path(&dir, &sid()), [0u8; 1001]).unwrap();
        assert_eq!(cached_size(&dir, &sid()).await, Some(1001));
    }

    #[tokio::test]
    async fn concurrent_writers_get_distinct_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = final_path(dir.path(), &sid());
        let mut a = TempRecording::create(dir.path(), &sid(), 10_000)
            .await
            .unwrap();
        let mut b = TempRecording::create(dir.path(), &sid(), 10_000)
            .await
            .unwrap();
        assert_ne!(a.path(), b.path());
        a.write_chunk(Bytes::from(vec![b'a'; 2000])).await.unwrap();
        b.write_chunk(Bytes::from(vec![b'b'; 3000])).await.unwrap();
        a.commit(&target).await.unwrap();
        b.commit(&target).await.unwrap();
        let body = std::fs::read(&target).unwrap();
        assert!(body.len() == 3000 && body.iter().all(|&c| c == b'b'));
        assert_eq!(entries(dir.path()).len(), 1);
    }
}
