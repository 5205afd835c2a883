//! Segment footers kept across queries. Segments never change once written, so the metadata of
//! each (schema, row groups, statistics and page indexes, decrypted when the segment is
//! encrypted) is read and parsed once and kept in the query runtime's metadata cache
//! (DataFusion's, bounded, least recently used out), instead of by every query that opens the
//! file. DataFusion's own cached reader leaves encrypted files out; logwell's segments are
//! encrypted by default.

use arrow::datatypes::{Field, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::common::HashMap;
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::execution::cache::cache_manager::{
    CachedFileMetadataEntry, FileMetadata, FileMetadataCache,
};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::basic::Encoding;
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::{ObjectMeta, ObjectStore};
use std::any::Any;
use std::ops::Range;
use std::sync::Arc;

/// Opens segments for reading, their footers from `cache` when it holds them.
#[derive(Debug)]
pub(crate) struct CachedFooters {
    files: DefaultParquetFileReaderFactory,
    cache: Arc<FileMetadataCache>,
}

impl CachedFooters {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, cache: Arc<FileMetadataCache>) -> Self {
        CachedFooters {
            files: DefaultParquetFileReaderFactory::new(store),
            cache,
        }
    }
}

impl CachedFooters {
    /// A reader of one segment, its footer from the cache when kept there.
    pub(crate) fn open(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Segment> {
        let meta = file.object_meta.clone();
        let inner = self
            .files
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Segment {
            inner,
            meta,
            cache: self.cache.clone(),
        })
    }
}

impl ParquetFileReaderFactory for CachedFooters {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        Ok(Box::new(self.open(
            partition_index,
            file,
            metadata_size_hint,
            metrics,
        )?))
    }
}

/// A footer as kept: the metadata, and whether it was read with a key (a footer decrypted
/// with a key serves only reads that hold it too; a plain read of an encrypted file must
/// fail as it would without the cache).
struct Footer {
    metadata: Arc<ParquetMetaData>,
    decrypted: bool,
}

impl FileMetadata for Footer {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn memory_size(&self) -> usize {
        self.metadata.memory_size()
    }

    fn extra_info(&self) -> HashMap<String, String> {
        HashMap::from([("decrypted".to_owned(), self.decrypted.to_string())])
    }
}

/// The footer of the segment at `path`, if a read has kept it.
pub(crate) fn kept(cache: &FileMetadataCache, path: &str) -> Option<Arc<ParquetMetaData>> {
    let entry = cache.get(&object_store::path::Path::from(path))?;
    let footer = entry.file_metadata.as_any().downcast_ref::<Footer>()?;
    Some(footer.metadata.clone())
}

/// The largest dictionary page (as stored) of a column read as a dictionary: a field with few
/// values (levels, methods, paths). One with many (users, ids) groups no faster by keys, and
/// its dictionaries cost more to map than the text costs to hash.
const SMALL_DICTIONARY: i64 = 16 << 10;

/// Whether every data page of column `name`, in every row group, is dictionary-encoded from
/// a small dictionary (a chunk whose dictionary grew too large goes on in plain pages; read
/// as a dictionary, those would be hashed back into one).
pub(crate) fn small_dictionary(footer: &ParquetMetaData, name: &str) -> bool {
    let Some(at) = footer
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [name])
    else {
        return false;
    };
    footer.row_groups().iter().all(|rg| {
        let chunk = rg.column(at);
        chunk
            .dictionary_page_offset()
            .is_some_and(|at| chunk.data_page_offset() - at <= SMALL_DICTIONARY)
            && chunk.page_encoding_stats_mask().is_some_and(|m| {
                m.is_only(Encoding::RLE_DICTIONARY) || m.is_only(Encoding::PLAIN_DICTIONARY)
            })
    })
}

/// The file's Arrow schema with the columns named in `fields` given their types there.
pub(crate) fn schema_with(footer: &ParquetMetaData, fields: &[&Field]) -> Option<SchemaRef> {
    let meta = footer.file_metadata();
    let schema = parquet_to_arrow_schema(meta.schema_descr(), meta.key_value_metadata()).ok()?;
    let columns: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match fields.iter().find(|g| g.name() == f.name()) {
            Some(g) => f.as_ref().clone().with_data_type(g.data_type().clone()),
            None => f.as_ref().clone(),
        })
        .collect();
    Some(Arc::new(Schema::new_with_metadata(
        columns,
        schema.metadata().clone(),
    )))
}

/// One segment opened through [`CachedFooters`].
pub(crate) struct Segment {
    inner: Box<dyn AsyncFileReader + Send>,
    meta: ObjectMeta,
    cache: Arc<FileMetadataCache>,
}

impl AsyncFileReader for Segment {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let decrypted = options.is_some_and(|o| o.file_decryption_properties().is_some());
            let kept = self
                .cache
                .get(&self.meta.location)
                .filter(|e| e.is_valid_for(&self.meta));
            if let Some(footer) = kept
                .as_ref()
                .and_then(|e| e.file_metadata.as_any().downcast_ref::<Footer>())
                .filter(|f| f.decrypted == decrypted)
            {
                return Ok(footer.metadata.clone());
            }
            // Kept with the page index (each page's statistics and offsets), which DataFusion
            // asks to skip and then, for any predicate that prunes pages (a narrowed page's time
            // range, FilterLogEvents' keys), reads from the file again on every query.
            let with_index = options
                .cloned()
                .unwrap_or_default()
                .with_page_index_policy(PageIndexPolicy::Optional);
            let metadata = self.inner.get_metadata(Some(&with_index)).await?;
            let footer = Footer {
                metadata: metadata.clone(),
                decrypted,
            };
            self.cache.put(
                &self.meta.location,
                CachedFileMetadataEntry::new(self.meta.clone(), Arc::new(footer)),
            );
            Ok(metadata)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::record_batch::RecordBatch;
    use datafusion::execution::cache::default_cache::DefaultCache;
    use datafusion::parquet::arrow::ArrowWriter;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;

    async fn footer(
        footers: &CachedFooters,
        file: &PartitionedFile,
        options: Option<&ArrowReaderOptions>,
    ) -> datafusion::parquet::errors::Result<Arc<ParquetMetaData>> {
        let metrics = ExecutionPlanMetricsSet::new();
        let mut reader = footers
            .create_reader(0, file.clone(), None, &metrics)
            .unwrap();
        reader.get_metadata(options).await
    }

    /// `batch` written as a Parquet file at `path` in a new in-memory store, with footers kept
    /// by a new cache: the store, the file and its reader factory.
    async fn stored(
        path: &str,
        batch: RecordBatch,
        props: Option<datafusion::parquet::file::properties::WriterProperties>,
    ) -> (Arc<InMemory>, PartitionedFile, CachedFooters) {
        let store = Arc::new(InMemory::new());
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), props).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let path = Path::from(path);
        store.put(&path, bytes.into()).await.unwrap();
        let file = PartitionedFile::new(path.to_string(), store.head(&path).await.unwrap().size);
        let cache: Arc<FileMetadataCache> = Arc::new(DefaultCache::new(1 << 20));
        let footers = CachedFooters::new(store.clone(), cache);
        (store, file, footers)
    }

    #[tokio::test]
    async fn a_footer_is_read_from_the_file_once_and_only_by_reads_with_the_same_keys() {
        let batch =
            RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)])
                .unwrap();
        let (store, file, footers) = stored("segments/a.parquet", batch, None).await;
        let path = Path::from("segments/a.parquet");

        assert_eq!(
            footer(&footers, &file, None)
                .await
                .unwrap()
                .file_metadata()
                .num_rows(),
            3
        );
        // The file's footer is not read again: the next read gets it with the file gone.
        store.delete(&path).await.unwrap();
        assert_eq!(
            footer(&footers, &file, None)
                .await
                .unwrap()
                .file_metadata()
                .num_rows(),
            3
        );
        // A footer read without a key serves no read with one (nor the other way round): that
        // read goes to the file, here gone.
        let keyed = ArrowReaderOptions::new().with_file_decryption_properties(
            datafusion::parquet::encryption::decrypt::FileDecryptionProperties::builder(
                b"0123456789012345".to_vec(),
            )
            .build()
            .unwrap(),
        );
        assert!(footer(&footers, &file, Some(&keyed)).await.is_err());
    }

    #[tokio::test]
    async fn a_footer_is_kept_with_its_page_index_though_the_read_skips_it() {
        let batch = RecordBatch::try_from_iter([(
            "timestamp",
            Arc::new(Int64Array::from((0..10_000).collect::<Vec<i64>>())) as _,
        )])
        .unwrap();
        let props = datafusion::parquet::file::properties::WriterProperties::builder()
            .set_data_page_row_count_limit(1000)
            .set_write_batch_size(1000)
            .build();
        let (store, file, footers) = stored("segments/b.parquet", batch, Some(props)).await;
        let path = Path::from("segments/b.parquet");
        // DataFusion opens files asking to skip the page index.
        let skip = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Skip);
        footer(&footers, &file, Some(&skip)).await.unwrap();
        // Page pruning later needs it: the kept footer has it, so the file is not read again.
        store.delete(&path).await.unwrap();
        let kept = footer(&footers, &file, Some(&skip)).await.unwrap();
        let pages = kept.offset_index().expect("offset index kept")[0][0]
            .page_locations()
            .len();
        assert_eq!(pages, 10);
        assert!(kept.column_index().is_some());
    }
}
