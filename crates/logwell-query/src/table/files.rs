//! Reading a group's Parquet segments: the files of a scan in partitions, encrypted ones with
//! their keys, split messages joined back whole, and the field columns a query groups by read as
//! dictionaries where every file allows it.

use super::*;

/// Decrypts a group's encrypted segments with its data key (plain ones, written before the group
/// had one, are read as they are).
#[derive(Debug)]
struct SegmentKeys {
    /// The key of each encrypted segment, by path.
    keys: std::collections::HashMap<String, logwell_storage::keys::DataKey>,
}

#[async_trait]
impl datafusion::execution::parquet_encryption::EncryptionFactory for SegmentKeys {
    async fn get_file_encryption_properties(
        &self,
        _config: &datafusion::common::config::EncryptionFactoryOptions,
        _schema: &SchemaRef,
        _file_path: &object_store::path::Path,
    ) -> Result<Option<Arc<datafusion::parquet::encryption::encrypt::FileEncryptionProperties>>>
    {
        Ok(None)
    }

    async fn get_file_decryption_properties(
        &self,
        _config: &datafusion::common::config::EncryptionFactoryOptions,
        file_path: &object_store::path::Path,
    ) -> Result<Option<Arc<datafusion::parquet::encryption::decrypt::FileDecryptionProperties>>>
    {
        Ok(self.keys.get(file_path.as_ref()).map(|k| k.decryption()))
    }
}

impl GroupTable {
    /// A scan of `segments` whose file schema is `schema`, reading columns `projection`. The
    /// segments that store their messages split (see [`logwell_template`]) are read apart and
    /// give their messages whole again.
    pub(super) fn parquet(
        &self,
        state: &dyn Session,
        segments: &[&Arc<SegmentMeta>],
        schema: SchemaRef,
        projection: Vec<usize>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (split, whole): (Vec<&Arc<SegmentMeta>>, Vec<&Arc<SegmentMeta>>) =
            segments.iter().partition(|s| s.templated);
        let mut scans = Vec::new();
        if !whole.is_empty() {
            let (schema, projection) = (schema.clone(), projection.clone());
            scans.push(self.parquet_files(state, &whole, schema, projection, filters, limit)?);
        }
        if !split.is_empty() {
            scans.push(self.split_messages(state, &split, &schema, &projection, filters, limit)?);
        }
        match scans.len() {
            1 => Ok(scans.remove(0)),
            _ => UnionExec::try_new(scans),
        }
    }

    /// [`Self::parquet`] over segments that store `message` as `message_template` and
    /// `message_vars`: those are read in its place, and joined only if the message is read.
    fn split_messages(
        &self,
        state: &dyn Session,
        segments: &[&Arc<SegmentMeta>],
        schema: &SchemaRef,
        projection: &[usize],
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let message = schema.index_of(columns::MESSAGE)?;
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.splice(message..=message, template_fields());
        let file = Arc::new(Schema::new(fields));
        let mut read = Vec::with_capacity(projection.len() + 1);
        for &i in projection {
            match i.cmp(&message) {
                std::cmp::Ordering::Less => read.push(i),
                std::cmp::Ordering::Equal => read.extend([message, message + 1]),
                std::cmp::Ordering::Greater => read.push(i + 1),
            }
        }
        let scan = self.parquet_files(state, segments, file, read, filters, limit)?;
        if !projection.contains(&message) {
            return Ok(scan);
        }
        let out = scan.schema();
        let df = DFSchema::try_from(out.as_ref().clone())?;
        let named = |n: &str| Expr::Column(datafusion::common::Column::new_unqualified(n));
        let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
        for f in out.fields() {
            let (e, name) = match f.name().as_str() {
                MESSAGE_VARS => continue,
                MESSAGE_TEMPLATE => (
                    crate::udf::JoinMessage::call(named(MESSAGE_TEMPLATE), named(MESSAGE_VARS)),
                    columns::MESSAGE,
                ),
                n => (named(n), n),
            };
            exprs.push((state.create_physical_expr(e, &df)?, name.to_string()));
        }
        Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
    }

    /// A scan of `segments`, which all store their messages alike, as [`Self::parquet`].
    fn parquet_files(
        &self,
        state: &dyn Session,
        segments: &[&Arc<SegmentMeta>],
        schema: SchemaRef,
        projection: Vec<usize>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Row-level pushdown: the predicate is evaluated while decoding, on the small columns it
        // reads, and the other columns (the message) are decoded only for rows that pass. It pays
        // where it cuts rows inside row groups: a page probe's rising bar (and the TopK bound
        // pushed into a filtered probe), or a time range that ends inside a segment, as a page's
        // narrowed range does. A range that holds whole segments is settled by statistics, and
        // testing it row by row would cost every query a pass over its timestamps.
        let cuts = self.bound.is_some()
            || segments
                .iter()
                .any(|s| s.min_ts < self.range.0 || s.max_ts > self.range.1);
        let mut options = state.table_options().parquet.clone();
        options.global.pushdown_filters = cuts;
        options.global.reorder_filters = cuts;
        // Segments carry no bloom filters; asking costs a predicate evaluation per row group.
        options.global.bloom_filter_on_read = false;
        let runtime = state.runtime_env();
        let footers = crate::footers::CachedFooters::new(
            runtime.object_store(ObjectStoreUrl::parse(STORE_URL)?)?,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let mut source = ParquetSource::new(schema.clone())
            .with_table_parquet_options(options)
            .with_parquet_file_reader_factory(Arc::new(footers));
        let keys: std::collections::HashMap<_, _> = segments
            .iter()
            .filter(|s| s.encrypted)
            .filter_map(|s| {
                let key = self
                    .snapshot
                    .held_keys
                    .get(&s.path)
                    .or(self.snapshot.data_key.as_ref())?;
                Some((s.path.clone(), key.clone()))
            })
            .collect();
        if !keys.is_empty() {
            source = source.with_encryption_factory(Arc::new(SegmentKeys { keys }));
        }
        // The time range prunes where it cuts into a segment (the caller filters rows exactly
        // above the scan); over whole segments it would cost every file opened an evaluation
        // of its statistics and prune nothing.
        let ts = col(columns::TIMESTAMP);
        let range = cuts.then(|| {
            ts.clone()
                .gt_eq(lit(self.range.0))
                .and(ts.lt_eq(lit(self.range.1)))
        });
        // Only filters on columns the files have (a missing column would read as null and prune
        // row groups that match), and only cheap ones: every filter is applied again above the
        // scan, so a function call (a regex, a JSON extraction, a statistics counter) or a test
        // of the message would cost twice. What is left is what statistics can prune with.
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let usable = filters.iter().filter(|f| {
            let refs = f.column_refs();
            refs.iter()
                .all(|c| schema.index_of(c.name()).is_ok() && c.name() != columns::MESSAGE)
                && !f
                    .exists(|e| Ok(matches!(e, Expr::ScalarFunction(_))))
                    .unwrap_or(true)
        });
        if let Some(predicate) = conjunction(usable.cloned().chain(range)) {
            let mut predicate = state.create_physical_expr(predicate, &df_schema)?;
            if let Some(bound) = &self.bound {
                predicate = Arc::new(datafusion::physical_expr::expressions::BinaryExpr::new(
                    predicate,
                    datafusion::logical_expr::Operator::And,
                    bound.filter(),
                ));
            }
            source = source.with_predicate(predicate);
        }
        // One file group per core, each holding whole segments, newest files (oldest, for rows
        // wanted oldest first) spread evenly and read first: a top-N query's bound then rises at
        // once and prunes the other files.
        let parts = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); parts.min(segments.len())];
        let n = groups.len();
        let mut segments = segments.to_vec();
        if self.oldest_first || self.bound.as_ref().is_some_and(|b| b.ascending) {
            segments.sort_by_key(|s| s.min_ts);
        } else {
            segments.sort_by_key(|s| std::cmp::Reverse(s.max_ts));
        }
        let keyed: Vec<&Field> = schema
            .fields()
            .iter()
            .filter(|f| f.data_type() == &keyed_type())
            .map(|f| f.as_ref())
            .collect();
        let cache = runtime.cache_manager.get_file_metadata_cache();
        for (i, s) in segments.iter().enumerate() {
            let mut file = PartitionedFile::new(s.path.clone(), s.bytes);
            // The reader gives dictionaries only when told the file's schema has them.
            if !keyed.is_empty() {
                if let Some(schema) = crate::footers::kept(cache.as_ref(), &s.path)
                    .and_then(|f| crate::footers::schema_with(&f, &keyed))
                {
                    file = file.with_arrow_schema(schema);
                }
            }
            groups[i % n].push(file);
        }
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, Arc::new(source))
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .with_projection_indices(Some(projection))?
                .with_limit(limit)
                .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    /// `layout` with the text fields a query groups by (see [`Self::group_by`]) that
    /// `segments` all hold in dictionary-encoded pages, from small dictionaries, read as
    /// dictionaries ([`Stored::Keyed`]), as far as their footers are known (every query but
    /// the first to open a segment). Fields a pushed filter tests stay text, so that pruning
    /// and row filters compare text as they always have.
    pub(super) fn keyed<'a>(
        &self,
        state: &dyn Session,
        segments: &[&Arc<SegmentMeta>],
        layout: &Layout<'a>,
        pushed: &[Expr],
    ) -> Layout<'a> {
        let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        let footers: Option<Vec<_>> = segments
            .iter()
            .map(|s| crate::footers::kept(cache.as_ref(), &s.path))
            .collect();
        let tested: std::collections::HashSet<String> = pushed
            .iter()
            .flat_map(|f| f.column_refs().into_iter().map(|c| c.name.clone()))
            .collect();
        let mut stored = layout.stored.clone();
        let grouped = self.grouped.lock().expect("not poisoned").clone();
        if let Some(footers) = footers.filter(|_| !grouped.is_empty()) {
            for (k, s) in layout.paths.iter().zip(stored.iter_mut()) {
                let name = field_column(&self.fields[*k]);
                if *s == Stored::Text
                    && grouped.contains(&name)
                    && !tested.contains(&name)
                    && footers
                        .iter()
                        .all(|f| crate::footers::small_dictionary(f, &name))
                {
                    *s = Stored::Keyed;
                }
            }
        }
        Layout {
            paths: layout.paths,
            stored,
        }
    }
}
