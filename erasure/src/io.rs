//! Device I/O: one lane per device, served either by a thread that owns a
//! tokio-uring runtime (io_uring) or by a small pool of threads doing plain
//! positional reads/writes. Both backends produce identical files; callers
//! submit an operation and await its reply, so they work from any runtime.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

/// Which I/O backend serves device operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring through a tokio-uring runtime on dedicated threads.
    Uring,
    /// Ordinary blocking pread/pwrite/fdatasync on dedicated threads.
    Threaded,
}

impl std::fmt::Display for IoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoBackend::Uring => "io_uring",
            IoBackend::Threaded => "threaded",
        })
    }
}

/// Probes whether this process may create an io_uring instance (it may not
/// under Docker's default seccomp profile, which refuses `io_uring_setup`).
pub fn probe_uring() -> io::Result<()> {
    std::thread::spawn(|| tokio_uring::Runtime::new(&tokio_uring::builder()).map(drop))
        .join()
        .map_err(|_| io::Error::other("io_uring probe panicked"))?
}

/// Chooses the backend: threaded when forced (config or `CAIRN_IO=threaded`)
/// or when the io_uring probe fails.
pub fn choose_backend(force_threaded: bool) -> IoBackend {
    let env_forced = std::env::var("CAIRN_IO")
        .map(|v| v.eq_ignore_ascii_case("threaded"))
        .unwrap_or(false);
    if force_threaded || env_forced {
        tracing::info!("device I/O: threaded backend (forced)");
        return IoBackend::Threaded;
    }
    match probe_uring() {
        Ok(()) => {
            tracing::info!("device I/O: io_uring backend");
            IoBackend::Uring
        }
        Err(e) => {
            tracing::warn!(error = %e, "io_uring unavailable; device I/O falls back to threads");
            IoBackend::Threaded
        }
    }
}

static NEXT_FILE_ID: AtomicU64 = AtomicU64::new(1);

/// An open device file. Cheap to clone; operations go through its device lane.
#[derive(Clone)]
pub struct IoFile {
    inner: Arc<FileInner>,
}

struct FileInner {
    id: u64,
    file: File,
    lane: Lane,
}

impl Drop for FileInner {
    fn drop(&mut self) {
        if let Lane::Uring(tx) = &self.lane {
            let _ = tx.send(Msg::Forget(self.id));
        }
    }
}

enum Req {
    Read { off: u64, len: usize },
    Write { off: u64, data: Bytes },
    Sync,
}

struct Op {
    file: Arc<FileInner>,
    req: Req,
    reply: oneshot::Sender<io::Result<Bytes>>,
}

enum Msg {
    Op(Op),
    Forget(u64),
}

#[derive(Clone)]
enum Lane {
    Uring(mpsc::UnboundedSender<Msg>),
    Threaded(mpsc::UnboundedSender<Msg>),
}

/// The I/O lane of one device. Operations return futures that resolve when
/// the device thread has completed them; many may be in flight at once.
#[derive(Clone)]
pub struct DeviceIo {
    lane: Lane,
    backend: IoBackend,
}

impl DeviceIo {
    /// Starts the lane's thread(s) for `name` with the given backend. If an
    /// io_uring runtime cannot be created on the lane thread, the lane uses
    /// threads instead.
    pub fn start(name: &str, backend: IoBackend, threads: usize) -> io::Result<DeviceIo> {
        if backend == IoBackend::Uring {
            match start_uring_lane(name) {
                Ok(tx) => {
                    return Ok(DeviceIo {
                        lane: Lane::Uring(tx),
                        backend,
                    })
                }
                Err(e) => {
                    tracing::warn!(device = name, error = %e, "io_uring lane failed; using threads")
                }
            }
        }
        let tx = start_threaded_lane(name, threads)?;
        Ok(DeviceIo {
            lane: Lane::Threaded(tx),
            backend: IoBackend::Threaded,
        })
    }

    /// The backend this lane actually runs.
    pub fn backend(&self) -> IoBackend {
        self.backend
    }

    /// Wraps an open file so its I/O goes through this lane.
    pub fn file(&self, file: File) -> IoFile {
        IoFile {
            inner: Arc::new(FileInner {
                id: NEXT_FILE_ID.fetch_add(1, Ordering::Relaxed),
                file,
                lane: self.lane.clone(),
            }),
        }
    }
}

impl IoFile {
    fn submit(&self, req: Req) -> impl std::future::Future<Output = io::Result<Bytes>> + 'static {
        let (reply, rx) = oneshot::channel();
        let op = Op {
            file: self.inner.clone(),
            req,
            reply,
        };
        let sent = match &self.inner.lane {
            Lane::Uring(tx) | Lane::Threaded(tx) => tx.send(Msg::Op(op)).is_ok(),
        };
        async move {
            if !sent {
                return Err(io::Error::other("device I/O lane is gone"));
            }
            rx.await
                .map_err(|_| io::Error::other("device I/O lane dropped the request"))?
        }
    }

    /// Reads up to `len` bytes at `off` (fewer only at end of file).
    pub fn read_at(
        &self,
        off: u64,
        len: usize,
    ) -> impl std::future::Future<Output = io::Result<Bytes>> + 'static {
        self.submit(Req::Read { off, len })
    }

    /// Reads exactly `len` bytes at `off`; a short file is an `UnexpectedEof` error.
    pub async fn read_exact_at(&self, off: u64, len: usize) -> io::Result<Bytes> {
        let b = self.read_at(off, len).await?;
        if b.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("short read: {} of {len} bytes at {off}", b.len()),
            ));
        }
        Ok(b)
    }

    /// Writes all of `data` at `off`.
    pub fn write_all_at(
        &self,
        off: u64,
        data: Bytes,
    ) -> impl std::future::Future<Output = io::Result<()>> + 'static {
        let f = self.submit(Req::Write { off, data });
        async move { f.await.map(drop) }
    }

    /// fdatasync: the data written so far is durable when this resolves.
    pub fn sync_data(&self) -> impl std::future::Future<Output = io::Result<()>> + 'static {
        let f = self.submit(Req::Sync);
        async move { f.await.map(drop) }
    }

    /// The file's current length.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.inner.file.metadata()?.len())
    }
}

fn start_threaded_lane(name: &str, threads: usize) -> io::Result<mpsc::UnboundedSender<Msg>> {
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads.max(1) {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("io-{name}-{i}"))
            .spawn(move || loop {
                let msg = rx.lock().blocking_recv();
                match msg {
                    None => return,
                    Some(Msg::Forget(_)) => {}
                    Some(Msg::Op(op)) => {
                        let res = run_threaded(&op.file.file, op.req);
                        let _ = op.reply.send(res);
                    }
                }
            })?;
    }
    Ok(tx)
}

fn run_threaded(file: &File, req: Req) -> io::Result<Bytes> {
    match req {
        Req::Read { off, len } => {
            let mut buf = vec![0u8; len];
            let mut filled = 0;
            while filled < len {
                match file.read_at(&mut buf[filled..], off + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok(Bytes::from(buf))
        }
        Req::Write { off, data } => file.write_all_at(&data, off).map(|_| Bytes::new()),
        Req::Sync => file.sync_data().map(|_| Bytes::new()),
    }
}

fn start_uring_lane(name: &str) -> io::Result<mpsc::UnboundedSender<Msg>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    std::thread::Builder::new()
        .name(format!("uring-{name}"))
        .spawn(move || {
            let rt = match tokio_uring::Runtime::new(tokio_uring::builder().entries(256)) {
                Ok(rt) => {
                    let _ = ready_tx.send(Ok(()));
                    rt
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let cache: Rc<std::cell::RefCell<HashMap<u64, Rc<tokio_uring::fs::File>>>> =
                    Rc::default();
                while let Some(msg) = rx.recv().await {
                    match msg {
                        Msg::Forget(id) => {
                            cache.borrow_mut().remove(&id);
                        }
                        Msg::Op(op) => {
                            let cache = cache.clone();
                            tokio_uring::spawn(async move {
                                let res = run_uring(&cache, &op.file, op.req).await;
                                let _ = op.reply.send(res);
                            });
                        }
                    }
                }
            });
        })?;
    ready_rx
        .recv()
        .map_err(|_| io::Error::other("io_uring lane thread died"))??;
    Ok(tx)
}

async fn run_uring(
    cache: &std::cell::RefCell<HashMap<u64, Rc<tokio_uring::fs::File>>>,
    inner: &FileInner,
    req: Req,
) -> io::Result<Bytes> {
    let existing = cache.borrow().get(&inner.id).cloned();
    let file = match existing {
        Some(f) => f,
        None => {
            let f = Rc::new(tokio_uring::fs::File::from_std(inner.file.try_clone()?));
            cache.borrow_mut().insert(inner.id, f.clone());
            f
        }
    };
    match req {
        Req::Read { off, len } => {
            let mut buf: Vec<u8> = Vec::with_capacity(len);
            let mut filled = 0usize;
            while filled < len {
                let slice = tokio_uring::buf::BoundedBuf::slice(buf, filled..len);
                let (res, slice) = file.read_at(slice, off + filled as u64).await;
                buf = slice.into_inner();
                match res {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok(Bytes::from(buf))
        }
        Req::Write { off, data } => {
            let (res, _) = file.write_all_at(data, off).await;
            res.map(|_| Bytes::new())
        }
        Req::Sync => file.sync_data().await.map(|_| Bytes::new()),
    }
}
