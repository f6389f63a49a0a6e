//! The S3 operations, each a thin translation onto [`ObjectStore`] calls.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result, S3};

use super::cond::{check_read_conditions, ReadConditions};
use super::convert::*;
use crate::checksum::ChecksumAlgo;
use crate::store::{self, ListPage, ListQuery, ObjectInfo, ObjectStore, RangeSpec, WriteCondition};

/// Largest single PUT S3 accepts.
const MAX_PUT_SIZE: i64 = 5 << 30;
/// Smallest part (except the last) of a multipart upload.
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Highest part number.
const MAX_PART_NUMBER: i32 = 10_000;

/// The S3 head: implements `s3s::S3` on any [`ObjectStore`].
pub struct S3Head {
    store: Arc<dyn ObjectStore>,
}

impl S3Head {
    /// A head over `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> S3Head {
        S3Head { store }
    }

    /// One listing page from the store: an empty delimiter or marker counts as none.
    async fn page(
        &self,
        acct: &str,
        bucket: &str,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> S3Result<ListPage> {
        let nonempty = |s: Option<&str>| s.filter(|v| !v.is_empty()).map(str::to_owned);
        self.store
            .list_objects(
                acct,
                bucket,
                ListQuery {
                    prefix: prefix.unwrap_or_default().to_owned(),
                    delimiter: nonempty(delimiter),
                    start_after: nonempty(start_after),
                    max_keys,
                },
            )
            .await
            .map_err(s3_err)
    }
}

fn owner(account: &str) -> Owner {
    Owner {
        display_name: Some(account.to_owned()),
        id: Some(account.to_owned()),
    }
}

/// Builds the write condition; an `If-None-Match: <etag>` is checked here against the current
/// object (412 if it matches), `*` and `If-Match` atomically by the store.
async fn write_cond(
    store: &dyn ObjectStore,
    target: (&str, &str, &str),
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    let mut c = WriteCondition::default();
    if let Some(n) = if_none_match {
        match n {
            ETagCondition::Any => c.if_none_match_any = true,
            ETagCondition::ETag(e) => {
                let (acct, bucket, key) = target;
                if let Ok(cur) = store.head_object(acct, bucket, key).await {
                    if cur.etag == e.value().trim_matches('"') {
                        return Err(s3_error!(
                            PreconditionFailed,
                            "At least one of the pre-conditions you specified did not hold"
                        ));
                    }
                }
            }
        }
    }
    if let Some(m) = if_match {
        c.if_match = Some(match m {
            ETagCondition::Any => "*".to_owned(),
            ETagCondition::ETag(e) => e.value().to_owned(),
        });
    }
    Ok(c)
}

fn store_range(r: Range) -> RangeSpec {
    match r {
        Range::Int { first, last } => RangeSpec::From { first, last },
        Range::Suffix { length } => RangeSpec::Suffix(length),
    }
}

fn tag_set(tags: &[(String, String)]) -> TagSet {
    let mut tags = tags.to_vec();
    tags.sort();
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

fn copy_source(cs: &CopySource) -> S3Result<(String, String)> {
    match cs {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if let Some(v) = version_id {
                if v.as_ref() != "null" {
                    return Err(s3_error!(
                        NoSuchVersion,
                        "The specified version does not exist."
                    ));
                }
            }
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(
            NotImplemented,
            "only bucket/key copy sources are supported"
        )),
    }
}

fn check_version(v: Option<&String>) -> S3Result<()> {
    match v {
        Some(v) if v != "null" => Err(s3_error!(
            NoSuchVersion,
            "The specified version does not exist."
        )),
        _ => Ok(()),
    }
}

/// Evaluates x-amz-copy-source-if-* against the source object.
fn copy_conditions(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let c = ReadConditions {
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    };
    // For copies every failed condition is 412, never 304.
    check_read_conditions(info, &c).map_err(|e| {
        if *e.code() == s3s::S3ErrorCode::NotModified {
            s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )
        } else {
            e
        }
    })
}

macro_rules! checksum_fields {
    ($list:expr) => {{
        let l = $list;
        (
            checksum_of(l, ChecksumAlgo::Crc32),
            checksum_of(l, ChecksumAlgo::Crc32c),
            checksum_of(l, ChecksumAlgo::Crc64Nvme),
            checksum_of(l, ChecksumAlgo::Sha1),
            checksum_of(l, ChecksumAlgo::Sha256),
        )
    }};
}

#[async_trait::async_trait]
impl S3 for S3Head {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let acct = account(&req)?;
        let bucket = req.input.bucket;
        self.store
            .create_bucket(&acct, &bucket)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let acct = account(&req)?;
        self.store
            .head_bucket(&acct, &req.input.bucket)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.store.region()),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let acct = account(&req)?;
        self.store
            .delete_bucket(&acct, &req.input.bucket)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let acct = account(&req)?;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let max = req.input.max_buckets.unwrap_or(10_000).clamp(1, 10_000) as usize;
        let after = match &req.input.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => None,
        };
        let region = self.store.region();
        let all = self.store.list_buckets(&acct).await.map_err(s3_err)?;
        let mut buckets: Vec<Bucket> = all
            .into_iter()
            .filter(|b| b.name.starts_with(&prefix))
            .filter(|b| after.as_deref().is_none_or(|a| b.name.as_str() > a))
            .take(max + 1)
            .map(|b| Bucket {
                bucket_region: Some(region.clone()),
                creation_date: Some(ts(b.created)),
                name: Some(b.name),
            })
            .collect();
        let next = if buckets.len() > max {
            buckets.truncate(max);
            buckets
                .last()
                .and_then(|b| b.name.as_deref())
                .map(encode_token)
        } else {
            None
        };
        Ok(S3Response::new(ListBucketsOutput {
            continuation_token: next,
            prefix: req.input.prefix.clone(),
            buckets: Some(buckets),
            owner: Some(owner(&acct)),
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let acct = account(&req)?;
        self.store
            .head_bucket(&acct, &req.input.bucket)
            .await
            .map_err(s3_err)?;
        let region = self.store.region();
        // S3 reports us-east-1 as an empty LocationConstraint.
        let lc = (region != "us-east-1").then(|| BucketLocationConstraint::from(region));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: lc,
        }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let acct = account(&req)?;
        self.store
            .head_bucket(&acct, &req.input.bucket)
            .await
            .map_err(s3_err)?;
        // Versioning has never been enabled on any bucket: S3 then returns an empty status.
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let acct = account(&req)?;
        let i = &req.input;
        if let Some(n) = i.content_length {
            if n > MAX_PUT_SIZE {
                return Err(s3_error!(
                    EntityTooLarge,
                    "Your proposed upload exceeds the maximum allowed size"
                ));
            }
        }
        if let Some(w) = i.write_offset_bytes {
            let _ = w;
            return Err(s3_error!(NotImplemented, "append writes are not supported"));
        }
        let check = body_check(
            &req,
            i.content_md5.as_deref(),
            ChecksumHeaders {
                crc32: i.checksum_crc32.clone(),
                crc32c: i.checksum_crc32c.clone(),
                crc64nvme: i.checksum_crc64nvme.clone(),
                sha1: i.checksum_sha1.clone(),
                sha256: i.checksum_sha256.clone(),
            },
            i.checksum_algorithm.as_ref().map(|a| a.as_str()),
            i.content_length,
        )?;
        let cond = write_cond(
            self.store.as_ref(),
            (&acct, &i.bucket, &i.key),
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )
        .await?;
        let tags = match &i.tagging {
            Some(t) => parse_tagging_header(t)?,
            None => Vec::new(),
        };
        let input = req.input;
        let p = props(
            input.content_type,
            input.content_encoding,
            input.content_language,
            input.content_disposition,
            input.cache_control,
            input.expires.as_ref(),
            input.metadata,
        );
        let body = match input.body {
            Some(b) => body_stream(b),
            None => empty_body(),
        };
        let info = self
            .store
            .put_object(&acct, &input.bucket, &input.key, p, tags, body, check, cond)
            .await
            .map_err(s3_err)?;
        let (crc32, crc32c, crc64, sha1, sha256) = checksum_fields!(&info.checksums);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&info)),
            checksum_type: checksum_type(&info.checksums),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        check_version(i.version_id.as_ref())?;
        let range = i.range.map(store_range);
        let got = self
            .store
            .get_object(&acct, &i.bucket, &i.key, range)
            .await
            .map_err(s3_err)?;
        let info = &got.info;
        check_read_conditions(
            info,
            &ReadConditions {
                if_match: i.if_match.as_ref(),
                if_none_match: i.if_none_match.as_ref(),
                if_modified_since: i.if_modified_since.as_ref(),
                if_unmodified_since: i.if_unmodified_since.as_ref(),
            },
        )?;
        check_part_number(i.part_number, info)?;
        let (len, content_range) = match got.range {
            Some((a, b)) => (b - a + 1, Some(format!("bytes {a}-{b}/{}", info.size))),
            None => (info.size, None),
        };
        let want_sums = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
            && got.range.is_none();
        let empty = Vec::new();
        let (crc32, crc32c, crc64, sha1, sha256) =
            checksum_fields!(if want_sums { &info.checksums } else { &empty });
        let p = &info.props;
        let output = GetObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            body: Some(blob(got.body)),
            content_length: Some(len as i64),
            content_range,
            last_modified: Some(ts(info.last_modified)),
            e_tag: Some(etag(info)),
            metadata: metadata(p),
            content_type: i.response_content_type.or_else(|| p.content_type.clone()),
            content_encoding: i
                .response_content_encoding
                .or_else(|| p.content_encoding.clone()),
            content_language: i
                .response_content_language
                .or_else(|| p.content_language.clone()),
            content_disposition: i
                .response_content_disposition
                .or_else(|| p.content_disposition.clone()),
            cache_control: i.response_cache_control.or_else(|| p.cache_control.clone()),
            expires: i.response_expires.or_else(|| expires(p)),
            parts_count: (info.parts_count > 1 || i.part_number.is_some())
                .then_some(info.parts_count as i32),
            tag_count: (!info.tags.is_empty()).then_some(info.tags.len() as i32),
            checksum_type: if want_sums {
                checksum_type(&info.checksums)
            } else {
                None
            },
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            ..Default::default()
        };
        let mut resp = S3Response::new(output);
        if got.range.is_some() {
            resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(resp)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        check_version(i.version_id.as_ref())?;
        let info = self
            .store
            .head_object(&acct, &i.bucket, &i.key)
            .await
            .map_err(s3_err)?;
        check_read_conditions(
            &info,
            &ReadConditions {
                if_match: i.if_match.as_ref(),
                if_none_match: i.if_none_match.as_ref(),
                if_modified_since: i.if_modified_since.as_ref(),
                if_unmodified_since: i.if_unmodified_since.as_ref(),
            },
        )?;
        let (len, content_range) = match i.range.map(store_range) {
            Some(r) => match r.resolve(info.size) {
                Some((a, b)) => (b - a + 1, Some(format!("bytes {a}-{b}/{}", info.size))),
                None => {
                    return Err(s3_error!(
                        InvalidRange,
                        "The requested range is not satisfiable"
                    ))
                }
            },
            None => (info.size, None),
        };
        let want_sums = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        let empty = Vec::new();
        let (crc32, crc32c, crc64, sha1, sha256) =
            checksum_fields!(if want_sums { &info.checksums } else { &empty });
        check_part_number(i.part_number, &info)?;
        let p = &info.props;
        let mut resp = S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(len as i64),
            content_range,
            last_modified: Some(ts(info.last_modified)),
            e_tag: Some(etag(&info)),
            metadata: metadata(p),
            content_type: i.response_content_type.or_else(|| p.content_type.clone()),
            content_encoding: i
                .response_content_encoding
                .or_else(|| p.content_encoding.clone()),
            content_language: i
                .response_content_language
                .or_else(|| p.content_language.clone()),
            content_disposition: i
                .response_content_disposition
                .or_else(|| p.content_disposition.clone()),
            cache_control: i.response_cache_control.or_else(|| p.cache_control.clone()),
            expires: i.response_expires.or_else(|| expires(p)),
            parts_count: (info.parts_count > 1 || i.part_number.is_some())
                .then_some(info.parts_count as i32),
            checksum_type: if want_sums {
                checksum_type(&info.checksums)
            } else {
                None
            },
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            ..Default::default()
        });
        if !info.tags.is_empty() {
            resp.headers.insert(
                "x-amz-tagging-count",
                http::HeaderValue::from(info.tags.len()),
            );
        }
        Ok(resp)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        check_version(i.version_id.as_ref())?;
        self.store
            .delete_object(&acct, &i.bucket, &i.key)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::with_status(
            DeleteObjectOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        if i.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed"
            ));
        }
        self.store
            .head_bucket(&acct, &i.bucket)
            .await
            .map_err(s3_err)?;
        let quiet = i.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in i.delete.objects {
            if let Some(v) = obj.version_id.as_ref() {
                if v != "null" {
                    errors.push(Error {
                        code: Some("NoSuchVersion".into()),
                        key: Some(obj.key),
                        message: Some("The specified version does not exist.".into()),
                        version_id: Some(v.clone()),
                    });
                    continue;
                }
            }
            match self.store.delete_object(&acct, &i.bucket, &obj.key).await {
                Ok(_) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(obj.key),
                            version_id: obj.version_id,
                            ..Default::default()
                        });
                    }
                }
                Err(e) => {
                    let e = s3_err(e);
                    errors.push(Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(obj.key),
                        message: e.message().map(str::to_owned),
                        version_id: None,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        let (sb, sk) = copy_source(&i.copy_source)?;
        let src_info = self
            .store
            .head_object(&acct, &sb, &sk)
            .await
            .map_err(s3_err)?;
        copy_conditions(
            &src_info,
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
        )?;
        let replace_meta = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let replace_tags = i
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        if sb == i.bucket && sk == i.key && !replace_meta && !replace_tags {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let new_props = replace_meta.then(|| {
            props(
                i.content_type.clone(),
                i.content_encoding.clone(),
                i.content_language.clone(),
                i.content_disposition.clone(),
                i.cache_control.clone(),
                i.expires.as_ref(),
                i.metadata.clone(),
            )
        });
        let new_tags = if replace_tags {
            Some(match &i.tagging {
                Some(t) => parse_tagging_header(t)?,
                None => Vec::new(),
            })
        } else {
            None
        };
        let src = store::CopySource {
            bucket: sb,
            key: sk,
            range: None,
        };
        let info = self
            .store
            .copy_object(
                &acct,
                src,
                &i.bucket,
                &i.key,
                new_props,
                new_tags,
                WriteCondition::default(),
            )
            .await
            .map_err(s3_err)?;
        let (crc32, crc32c, crc64, sha1, sha256) = checksum_fields!(&info.checksums);
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&info)),
                last_modified: Some(ts(info.last_modified)),
                checksum_crc32: crc32,
                checksum_crc32c: crc32c,
                checksum_crc64nvme: crc64,
                checksum_sha1: sha1,
                checksum_sha256: sha256,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        check_version(i.version_id.as_ref())?;
        let info = self
            .store
            .head_object(&acct, &i.bucket, &i.key)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(&info.tags),
            version_id: None,
        }))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        check_version(i.version_id.as_ref())?;
        let tags: Vec<(String, String)> = i
            .tagging
            .tag_set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect();
        validate_tags(&tags)?;
        self.store
            .set_tags(&acct, &i.bucket, &i.key, tags)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        check_version(i.version_id.as_ref())?;
        self.store
            .set_tags(&acct, &i.bucket, &i.key, Vec::new())
            .await
            .map_err(s3_err)?;
        Ok(S3Response::with_status(
            DeleteObjectTaggingOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        let max = max_keys(i.max_keys)?;
        let url = encoding_url(i.encoding_type.as_ref())?;
        let page = self
            .page(
                &acct,
                &i.bucket,
                i.prefix.as_deref(),
                i.delimiter.as_deref(),
                i.marker.as_deref(),
                max,
            )
            .await?;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let next_marker = if page.is_truncated && i.delimiter.is_some() {
            page.next_marker.clone().map(enc)
        } else {
            None
        };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(i.prefix.map(enc).unwrap_or_default()),
            marker: Some(i.marker.map(enc).unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(page.is_truncated),
            contents: Some(
                page.objects
                    .into_iter()
                    .map(|o| object_entry(o, &acct, url))
                    .collect(),
            ),
            common_prefixes: Some(
                page.common_prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.filter(|d| !d.is_empty()).map(enc),
            next_marker,
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let acct = account(&req)?;
        let i = req.input;
        let max = max_keys(i.max_keys)?;
        let url = encoding_url(i.encoding_type.as_ref())?;
        let start_after = match &i.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => i.start_after.clone().filter(|s| !s.is_empty()),
        };
        let page = self
            .page(
                &acct,
                &i.bucket,
                i.prefix.as_deref(),
                i.delimiter.as_deref(),
                start_after.as_deref(),
                max,
            )
            .await?;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let key_count = (page.objects.len() + page.common_prefixes.len()) as i32;
        let fetch_owner = i.fetch_owner.unwrap_or(false);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(i.prefix.map(enc).unwrap_or_default()),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            continuation_token: i.continuation_token,
            is_truncated: Some(page.is_truncated),
            next_continuation_token: if page.is_truncated {
                page.next_marker.as_deref().map(encode_token)
            } else {
                None
            },
            contents: Some(
                page.objects
                    .into_iter()
                    .map(|o| {
                        let mut e = object_entry(o, &acct, url);
                        if !fetch_owner {
                            e.owner = None;
                        }
                        e
                    })
                    .collect(),
            ),
            common_prefixes: Some(
                page.common_prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.filter(|d| !d.is_empty()).map(enc),
            encoding_type: i.encoding_type,
            start_after: i.start_after.map(enc),
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        let max = max_keys(i.max_keys)?;
        let url = encoding_url(i.encoding_type.as_ref())?;
        let page = self
            .page(
                &acct,
                &i.bucket,
                i.prefix.as_deref(),
                i.delimiter.as_deref(),
                i.key_marker.as_deref(),
                max,
            )
            .await?;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let versions = page
            .objects
            .into_iter()
            .map(|o| ObjectVersion {
                e_tag: Some(etag(&o)),
                is_latest: Some(true),
                last_modified: Some(ts(o.last_modified)),
                owner: Some(owner(&acct)),
                size: Some(o.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id: Some("null".to_owned()),
                key: Some(enc(o.key)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(i.prefix.map(enc).unwrap_or_default()),
            key_marker: Some(i.key_marker.map(enc).unwrap_or_default()),
            version_id_marker: Some(i.version_id_marker.unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(page.is_truncated),
            next_key_marker: if page.is_truncated {
                page.next_marker.map(enc)
            } else {
                None
            },
            next_version_id_marker: if page.is_truncated {
                Some("null".to_owned())
            } else {
                None
            },
            versions: Some(versions),
            common_prefixes: Some(
                page.common_prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.filter(|d| !d.is_empty()).map(enc),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        let tags = match &i.tagging {
            Some(t) => parse_tagging_header(t)?,
            None => Vec::new(),
        };
        let p = props(
            i.content_type,
            i.content_encoding,
            i.content_language,
            i.content_disposition,
            i.cache_control,
            i.expires.as_ref(),
            i.metadata,
        );
        let id = self
            .store
            .create_upload(&acct, &i.bucket, &i.key, p, tags)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            checksum_algorithm: i.checksum_algorithm,
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let acct = account(&req)?;
        let i = &req.input;
        if !(1..=MAX_PART_NUMBER).contains(&i.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        if i.content_length.is_some_and(|n| n > MAX_PUT_SIZE) {
            return Err(s3_error!(
                EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed size"
            ));
        }
        let check = body_check(
            &req,
            i.content_md5.as_deref(),
            ChecksumHeaders {
                crc32: i.checksum_crc32.clone(),
                crc32c: i.checksum_crc32c.clone(),
                crc64nvme: i.checksum_crc64nvme.clone(),
                sha1: i.checksum_sha1.clone(),
                sha256: i.checksum_sha256.clone(),
            },
            i.checksum_algorithm.as_ref().map(|a| a.as_str()),
            i.content_length,
        )?;
        let i = req.input;
        let body = match i.body {
            Some(b) => body_stream(b),
            None => empty_body(),
        };
        let part = self
            .store
            .stage_part(
                &acct,
                &i.bucket,
                &i.key,
                &i.upload_id,
                &part_id(i.part_number),
                body,
                check,
            )
            .await
            .map_err(s3_err)?;
        let (crc32, crc32c, crc64, sha1, sha256) = checksum_fields!(&part.checksums);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(hex::encode(part.md5))),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        if !(1..=MAX_PART_NUMBER).contains(&i.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let (sb, sk) = copy_source(&i.copy_source)?;
        let src_info = self
            .store
            .head_object(&acct, &sb, &sk)
            .await
            .map_err(s3_err)?;
        copy_conditions(
            &src_info,
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
        )?;
        let range = match &i.copy_source_range {
            Some(r) => Some(parse_copy_range(r, src_info.size)?),
            None => None,
        };
        let src = store::CopySource {
            bucket: sb,
            key: sk,
            range,
        };
        let part = self
            .store
            .stage_part_copy(
                &acct,
                src,
                &i.bucket,
                &i.key,
                &i.upload_id,
                &part_id(i.part_number),
            )
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(hex::encode(part.md5))),
                last_modified: Some(ts(part.last_modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = i.part_number_marker.unwrap_or(0);
        let parts = self
            .store
            .list_parts(&acct, &i.bucket, &i.key, &i.upload_id)
            .await
            .map_err(s3_err)?;
        let mut out = Vec::new();
        let mut truncated = false;
        for p in parts {
            let n: i32 = p.part_id.parse().unwrap_or(0);
            if n <= marker {
                continue;
            }
            if out.len() == max {
                truncated = true;
                break;
            }
            let (crc32, crc32c, crc64, sha1, sha256) = checksum_fields!(&p.checksums);
            out.push(Part {
                e_tag: Some(ETag::Strong(hex::encode(p.md5))),
                last_modified: Some(ts(p.last_modified)),
                part_number: Some(n),
                size: Some(p.size as i64),
                checksum_crc32: crc32,
                checksum_crc32c: crc32c,
                checksum_crc64nvme: crc64,
                checksum_sha1: sha1,
                checksum_sha256: sha256,
            });
        }
        let next = out.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(i.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: Some(marker),
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            parts: Some(out),
            owner: Some(owner(&acct)),
            initiator: Some(Initiator {
                display_name: Some(acct.clone()),
                id: Some(acct.clone()),
            }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        let max = i.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let prefix = i.prefix.clone().unwrap_or_default();
        let uploads = self
            .store
            .list_uploads(&acct, &i.bucket, &prefix)
            .await
            .map_err(s3_err)?;
        let key_marker = i.key_marker.clone().unwrap_or_default();
        let id_marker = i.upload_id_marker.clone().unwrap_or_default();
        let mut out = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut truncated = false;
        for u in uploads {
            if !key_marker.is_empty()
                && (u.key < key_marker
                    || (u.key == key_marker && (id_marker.is_empty() || u.upload_id <= id_marker)))
            {
                continue;
            }
            if let Some(d) = i.delimiter.as_deref().filter(|d| !d.is_empty()) {
                if let Some(pos) = u.key[prefix.len()..].find(d) {
                    let cp = u.key[..prefix.len() + pos + d.len()].to_owned();
                    if prefixes.last() != Some(&cp) {
                        if out.len() + prefixes.len() == max {
                            truncated = true;
                            break;
                        }
                        prefixes.push(cp);
                    }
                    continue;
                }
            }
            if out.len() + prefixes.len() == max {
                truncated = true;
                break;
            }
            out.push(MultipartUpload {
                initiated: Some(ts(u.initiated)),
                initiator: Some(Initiator {
                    display_name: Some(acct.clone()),
                    id: Some(acct.clone()),
                }),
                key: Some(u.key),
                owner: Some(owner(&acct)),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                upload_id: Some(u.upload_id),
                ..Default::default()
            });
        }
        let next_key = out.last().and_then(|u| u.key.clone());
        let next_id = out.last().and_then(|u| u.upload_id.clone());
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: i.prefix,
            delimiter: i.delimiter,
            key_marker: i.key_marker,
            upload_id_marker: i.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: if truncated { next_key } else { None },
            next_upload_id_marker: if truncated { next_id } else { None },
            uploads: Some(out),
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect(),
            ),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        let cond = write_cond(
            self.store.as_ref(),
            (&acct, &i.bucket, &i.key),
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
        )
        .await?;
        let requested = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if requested.is_empty() {
            return Err(s3_error!(MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema"));
        }
        let staged = match self
            .store
            .list_parts(&acct, &i.bucket, &i.key, &i.upload_id)
            .await
        {
            Ok(p) => p,
            // Already completed? The store answers with the object that upload produced.
            Err(crate::store::StoreError::NoSuchUpload(_)) => {
                let ids = requested
                    .iter()
                    .map(|p| part_id(p.part_number.unwrap_or(0)))
                    .collect();
                let info = self
                    .store
                    .commit_upload(&acct, &i.bucket, &i.key, &i.upload_id, ids, cond)
                    .await
                    .map_err(s3_err)?;
                return Ok(S3Response::new(CompleteMultipartUploadOutput {
                    bucket: Some(i.bucket.clone()),
                    key: Some(i.key.clone()),
                    e_tag: Some(etag(&info)),
                    location: Some(format!("/{}/{}", i.bucket, i.key)),
                    ..Default::default()
                }));
            }
            Err(e) => return Err(s3_err(e)),
        };
        let mut ids = Vec::with_capacity(requested.len());
        let mut last = 0;
        for (idx, cp) in requested.iter().enumerate() {
            let n = cp.part_number.unwrap_or(0);
            if n <= last {
                return Err(s3_error!(InvalidPartOrder, "The list of parts was not in ascending order. Parts must be ordered by part number."));
            }
            last = n;
            let id = part_id(n);
            let Some(p) = staged.iter().find(|p| p.part_id == id) else {
                return Err(s3_error!(InvalidPart, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."));
            };
            if let Some(e) = &cp.e_tag {
                if e.value().trim_matches('"') != hex::encode(p.md5) {
                    return Err(s3_error!(InvalidPart, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."));
                }
            }
            let claimed = [
                (ChecksumAlgo::Crc32, &cp.checksum_crc32),
                (ChecksumAlgo::Crc32c, &cp.checksum_crc32c),
                (ChecksumAlgo::Crc64Nvme, &cp.checksum_crc64nvme),
                (ChecksumAlgo::Sha1, &cp.checksum_sha1),
                (ChecksumAlgo::Sha256, &cp.checksum_sha256),
            ];
            for (algo, v) in claimed {
                if let (Some(v), Some(have)) = (v, checksum_of(&p.checksums, algo)) {
                    if *v != have {
                        return Err(s3_error!(
                            InvalidPart,
                            "The checksum of part {n} does not match the uploaded part."
                        ));
                    }
                }
            }
            if idx + 1 < requested.len() && p.size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed object size."
                ));
            }
            ids.push(id);
        }
        let info = self
            .store
            .commit_upload(&acct, &i.bucket, &i.key, &i.upload_id, ids, cond)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            e_tag: Some(etag(&info)),
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let acct = account(&req)?;
        let i = req.input;
        self.store
            .abort_upload(&acct, &i.bucket, &i.key, &i.upload_id)
            .await
            .map_err(s3_err)?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}

/// `?partNumber=N`: part 1 of a single-part object is the whole object; a part beyond the
/// object's parts is `InvalidPart`; the parts of multipart objects are not addressable yet.
fn check_part_number(pn: Option<i32>, info: &ObjectInfo) -> S3Result<()> {
    let Some(pn) = pn else { return Ok(()) };
    if pn < 1 || pn as u32 > info.parts_count.max(1) {
        return Err(s3_error!(
            InvalidPart,
            "The requested partnumber is not satisfiable"
        ));
    }
    if info.parts_count > 1 {
        return Err(s3_error!(
            NotImplemented,
            "GET by part number of a multipart object is not supported yet"
        ));
    }
    Ok(())
}

/// `ChecksumType` to report with checksums: whole-object checksums are FULL_OBJECT.
fn checksum_type(sums: &[(ChecksumAlgo, String)]) -> Option<ChecksumType> {
    (!sums.is_empty()).then(|| ChecksumType::from_static(ChecksumType::FULL_OBJECT))
}

fn max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

fn encoding_url(e: Option<&EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

fn object_entry(o: ObjectInfo, acct: &str, url: bool) -> Object {
    let checksum_algorithm: Vec<ChecksumAlgorithm> = if o.parts_count <= 1 {
        o.checksums
            .iter()
            .map(|(a, _)| ChecksumAlgorithm::from(a.name().to_owned()))
            .collect()
    } else {
        Vec::new()
    };
    Object {
        e_tag: Some(etag(&o)),
        last_modified: Some(ts(o.last_modified)),
        owner: Some(owner(acct)),
        size: Some(o.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        checksum_algorithm: (!checksum_algorithm.is_empty()).then_some(checksum_algorithm),
        key: Some(if url { url_encode(&o.key) } else { o.key }),
        ..Default::default()
    }
}

pub(crate) fn encode_token(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

pub(crate) fn decode_token(t: &str) -> S3Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

/// Parses `x-amz-copy-source-range: bytes=first-last` (both required, inclusive).
pub(crate) fn parse_copy_range(r: &str, size: u64) -> S3Result<(u64, u64)> {
    let bad = || -> S3Error {
        s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
    };
    let spec = r.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if a > b {
        return Err(bad());
    }
    if b >= size {
        return Err(s3_error!(
            InvalidRange,
            "The requested range is not satisfiable"
        ));
    }
    Ok((a, b))
}
