//! Writing one local file to any object store: in one request up to
//! `MULTIPART_ABOVE`, in parts above it (memory bounded by a few parts),
//! with its content type, cache policy and sha256 as attributes. Shared by
//! the object-store store (`remote`) and the S3 publish target.

use std::io::Read;
use std::path::Path;

use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, WriteMultipart};

use crate::util::hashing::Sha256;
use crate::util::mime;

/// Files larger than this go up in parts.
pub const MULTIPART_ABOVE: u64 = 64 * 1024 * 1024;
const PART_SIZE: usize = 16 * 1024 * 1024;

/// The attributes of a file object at `path` (its content type and cache
/// policy follow from its name).
pub fn attributes(path: &str, sha256: &Sha256) -> Attributes {
    let mut a = Attributes::new();
    a.insert(Attribute::ContentType, mime::content_type(path).into());
    a.insert(Attribute::CacheControl, mime::cache_control(path).into());
    a.insert(Attribute::Metadata("sha256".into()), sha256.hex().into());
    a
}

/// A local failure said as an object-store error, so one transfer has one
/// error type.
pub fn local(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic { store: "local", source: Box::new(e) }
}

/// Put `file` (`size` bytes) at `key` with `attrs`.
pub async fn put_file(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    file: &Path,
    size: u64,
    attrs: Attributes,
) -> object_store::Result<()> {
    if size <= MULTIPART_ABOVE {
        let file = file.to_path_buf();
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(file)).await.map_err(local)?.map_err(local)?;
        store.put_opts(key, PutPayload::from(bytes), PutOptions { attributes: attrs, ..PutOptions::default() }).await?;
        return Ok(());
    }
    let upload = store
        .put_multipart_opts(key, PutMultipartOptions { attributes: attrs, ..PutMultipartOptions::default() })
        .await?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut f = std::fs::File::open(file).map_err(local)?;
    let mut buf = vec![0u8; PART_SIZE];
    loop {
        w.wait_for_capacity(4).await?;
        let n = f.read(&mut buf).map_err(local)?;
        if n == 0 {
            break;
        }
        w.write(&buf[..n]);
    }
    w.finish().await?;
    Ok(())
}
