//! Segment encoding tests: layouts, field columns, split messages, statistics, encryption.

use super::*;
use crate::memtable::GroupMemtable;

#[test]
fn segments_sort_by_stream_then_time_and_round_trip() {
    let mut m = GroupMemtable::default();
    m.append("b", 5, 100, [(3i64, "b3"), (1, "b1")].into_iter());
    m.append("a", 5, 200, [(2i64, "a2")].into_iter());
    // Written a row group at a time: more rows than one, so they must join in sorted order.
    let n = 1024 + 10;
    let bulk: Vec<String> = (0..n).map(|i| format!("c{i:06}")).collect();
    m.append(
        "c",
        5,
        300,
        bulk.iter()
            .enumerate()
            .rev()
            .map(|(i, v)| (10 + i as i64, v.as_str())),
    );
    let Encoded {
        file,
        fields,
        stats: s,
        ..
    } = encode(
        &m.freeze_batches(),
        3,
        1024,
        &ColumnChoice::default(),
        None,
        &[],
        MessageTemplates::Off,
    )
    .unwrap();
    assert_eq!(
        (s.rows, s.min_ts, s.max_ts, s.max_seq),
        (3 + n as u64, 1, 9 + n as i64, 300 + n as i64 - 1)
    );
    assert_eq!(s.raw_bytes, 6 + 7 * n as u64);
    assert_eq!(
        s.streams,
        vec!["a".to_string(), "b".to_string(), "c".to_string()]
    );
    assert!(fields.is_empty(), "no JSON, no field columns");
    let back = decode(file, None).unwrap();
    let msgs: Vec<String> = back
        .iter()
        .flat_map(|b| {
            b.column(4)
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut want = vec!["a2".to_string(), "b1".into(), "b3".into()];
    want.extend(bulk);
    assert_eq!(msgs, want);
}

/// `lines` as the batches of one stream, timestamped 0, 1, 2...
fn one_stream(lines: &[String]) -> Vec<RecordBatch> {
    let mut m = GroupMemtable::default();
    let rows = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i as i64, l.as_str()));
    m.append("s", 5, 100, rows);
    m.freeze_batches()
}

#[test]
fn split_messages_read_back_byte_exact_and_take_fewer_bytes() {
    // sshd's lines, awkward bytes, and empty lines.
    let lines: Vec<String> = logwell_template::sample_sshd_lines(5000)
        .into_iter()
        .enumerate()
        .map(|(i, l)| match i % 9 {
            7 => String::new(),
            8 => format!("{l} \r\x11 café "),
            _ => l,
        })
        .collect();
    let batches = one_stream(&lines);
    let encoded = |t| encode(&batches, 15, 1024, &ColumnChoice::default(), None, &[], t).unwrap();
    let (whole, split) = (
        encoded(MessageTemplates::Off),
        encoded(MessageTemplates::WhenSmaller),
    );
    assert!(split.templated && !whole.templated);
    assert!(
        split.file.len() * 100 < whole.file.len() * 90,
        "split {} bytes, whole {}",
        split.file.len(),
        whole.file.len()
    );
    let all = read_whole(split.file.clone());
    assert!(all.column_by_name(col::MESSAGE).is_none());
    assert!(all.column_by_name(MESSAGE_TEMPLATE).is_some());
    let messages = |batches: Vec<RecordBatch>| -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let m = b.column(4).as_string::<i32>();
                m.iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(messages(decode(split.file.clone(), None).unwrap()), lines);
    let some = decode_pruned(split.file, None, 100, 199, |_, _| true).unwrap();
    assert!(messages(some).contains(&lines[150]));
}

#[test]
fn a_segment_with_the_rows_for_it_has_eight_row_groups_of_at_least_64k_rows() {
    let max = 256 * 1024;
    assert_eq!(rows_per_group(600_000, max), 75_000);
    assert_eq!(rows_per_group(100_000, max), 64 * 1024);
    assert_eq!(rows_per_group(10_000_000, max), max);
    assert_eq!(rows_per_group(100, 64), 64, "a smaller maximum is kept");
    let mut m = GroupMemtable::default();
    let lines: Vec<String> = (0..600_000).map(|i| format!("m{}", i % 10)).collect();
    m.append(
        "s",
        5,
        0,
        lines
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.as_str())),
    );
    let file = encode(
        &m.freeze_batches(),
        1,
        max,
        &ColumnChoice::default(),
        None,
        &[],
        MessageTemplates::Off,
    )
    .unwrap()
    .file;
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    let groups: Vec<i64> = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert_eq!(groups, [vec![75_000; 8]].concat());
}

#[test]
fn fields_holding_only_numbers_are_number_columns_that_print_back() {
    // `n` is a number in every row; `late` is one in the sampled rows but text in a row
    // the sample skips (the writer notices and writes it again as text); `code` has a
    // string that reads as a number but does not print back (`007`), so it stays text.
    let lines: Vec<String> = (0..40)
        .map(|i| {
            let late = if i == 37 {
                "\"x\"".to_string()
            } else {
                i.to_string()
            };
            let code = if i == 0 { "\"007\"" } else { "2" };
            format!(
                r#"{{"n":{},"late":{late},"code":{code},"s":"v{}"}}"#,
                i * 7 % 13,
                i % 3
            )
        })
        .collect();
    let mut m = GroupMemtable::default();
    m.append(
        "a",
        0,
        1,
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i as i64, l.as_str())),
    );
    let choice = ColumnChoice {
        sample: 10,
        ..Default::default()
    };
    let e = encode(
        &m.freeze_batches(),
        3,
        16,
        &choice,
        None,
        &[],
        MessageTemplates::Off,
    )
    .unwrap();
    assert_eq!(e.fields, ["code", "late", "n", "s"]);
    assert_eq!(e.numeric, ["n"]);
    let all = read_whole(e.file);
    let n = all.column_by_name("field:n").unwrap();
    assert_eq!(n.data_type(), &DataType::Float64);
    let n: Vec<f64> = n
        .as_primitive::<arrow::datatypes::Float64Type>()
        .values()
        .to_vec();
    assert_eq!(n, (0..40).map(|i| (i * 7 % 13) as f64).collect::<Vec<_>>());
    let late = all.column_by_name("field:late").unwrap().as_string::<i32>();
    assert_eq!(late.value(37), "x");
    assert_eq!(late.value(36), "36");
    let code = all.column_by_name("field:code").unwrap().as_string::<i32>();
    assert_eq!((code.value(0), code.value(1)), ("007", "2"));
}

/// Every column of a plain segment file, as one batch.
fn read_whole(file: Bytes) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[test]
fn given_field_columns_are_written_in_row_order_beside_chosen_ones() {
    // Two batches, written in reverse time order so the rows must be reordered; `n` is
    // given as numbers in one and text in the other, `t` as numbers in both; `s` is chosen.
    let mut m = GroupMemtable::new(3);
    let first = [
        r#"{"n":5,"t":1,"s":"a"}"#,
        r#"{"n":4,"t":2,"s":"b"}"#,
        r#"{"n":3,"t":3,"s":"c"}"#,
    ];
    let second = [r#"{"n":"x","t":4,"s":"d"}"#, r#"{"n":1,"t":5,"s":"e"}"#];
    m.append(
        "a",
        0,
        10,
        first.iter().enumerate().map(|(i, l)| (10 - i as i64, *l)),
    );
    m.append(
        "a",
        0,
        20,
        second.iter().enumerate().map(|(i, l)| (2 - i as i64, *l)),
    );
    let batches = m.freeze_batches();
    assert_eq!(batches.len(), 2);
    let given: Vec<Given> = ["n", "t"]
        .into_iter()
        .map(|p| {
            let columns = batches
                .iter()
                .map(|b| crate::buffered::extract_columns(b, &[(p, true)]).remove(0))
                .collect();
            Given::new(p.to_string(), columns)
        })
        .collect();
    let e = encode(
        &batches,
        3,
        2,
        &ColumnChoice::default(),
        None,
        &given,
        MessageTemplates::Off,
    )
    .unwrap();
    assert_eq!(e.fields, ["n", "s", "t"]);
    assert_eq!(e.numeric, ["t"]);
    let all = read_whole(e.file);
    let text = |name: &str| -> Vec<String> {
        let c = all.column_by_name(name).unwrap().as_string::<i32>();
        c.iter().map(|v| v.unwrap_or("-").to_string()).collect()
    };
    // Time order: 1 ("e"), 2 ("d"), 8 ("c"), 9 ("b"), 10 ("a").
    assert_eq!(text("message")[0], second[1]);
    assert_eq!(text("field:s"), ["e", "d", "c", "b", "a"]);
    assert_eq!(text("field:n"), ["1", "x", "3", "4", "5"]);
    let t = all.column_by_name("field:t").unwrap();
    let t: Vec<f64> = t
        .as_primitive::<arrow::datatypes::Float64Type>()
        .values()
        .to_vec();
    assert_eq!(t, [5.0, 4.0, 3.0, 2.0, 1.0]);
}

#[test]
fn encrypted_segments_need_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let ring =
        crate::keys::Keyring::open_or_create(&dir.path().join(crate::keys::KEYRING_FILE)).unwrap();
    let (key, _) = ring.new_data_key().unwrap();
    let (other, _) = ring.new_data_key().unwrap();
    let mut m = GroupMemtable::default();
    let secret = "user=alice password=hunter2 {\"level\":\"ERROR\"}";
    m.append("web-1", 5, 100, [(1i64, secret), (2, secret)].into_iter());
    let choice = ColumnChoice {
        max_columns: 4,
        ..Default::default()
    };
    let file = encode(
        &m.freeze_batches(),
        3,
        1024,
        &choice,
        Some(&key),
        &[],
        MessageTemplates::Always,
    )
    .unwrap()
    .file;
    let text = String::from_utf8_lossy(&file);
    for plain in ["alice", "hunter2", "web-1", "ERROR", "message", "timestamp"] {
        assert!(!text.contains(plain), "{plain} is readable in the file");
    }
    let back = decode(file.clone(), Some(&key)).unwrap();
    let rows: usize = back.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2);
    assert_eq!(back[0].column(4).as_string::<i32>().value(0), secret);
    assert!(decode(file.clone(), None).is_err(), "read without a key");
    assert!(decode(file, Some(&other)).is_err(), "read with another key");
}

#[test]
fn row_group_statistics_prune_by_stream_and_time() {
    let mut m = GroupMemtable::default();
    for (i, stream) in ["a", "b", "c", "d"].iter().enumerate() {
        let t = i as i64 * 100;
        m.append(
            stream,
            0,
            i as i64 * 10,
            [(t, "x"), (t + 1, "y")].into_iter(),
        );
    }
    // Two rows per row group: one stream each.
    let file = encode(
        &m.freeze_batches(),
        3,
        2,
        &ColumnChoice::default(),
        None,
        &[],
        MessageTemplates::Off,
    )
    .unwrap()
    .file;
    let rows = |lo, hi, f: &dyn Fn(&str, &str) -> bool| -> usize {
        decode_pruned(file.clone(), None, lo, hi, f)
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum()
    };
    assert_eq!(rows(i64::MIN, i64::MAX, &|_, _| true), 8);
    assert_eq!(
        rows(i64::MIN, i64::MAX, &|min, max| "c" >= min && "c" <= max),
        2
    );
    assert_eq!(rows(150, 250, &|_, _| true), 2);
    assert_eq!(rows(1000, 2000, &|_, _| true), 0);
}

#[test]
fn json_events_of_random_ids_are_kept_whole() {
    let lines: Vec<String> = (0..20_000u64)
        .map(|i| {
            format!(
                r#"{{"level":"{}","svc":"orders-api","path":"{}","status":{},"latency_ms":{},"user":"u-{:05}","trace":"{:016x}"}}"#,
                ["INFO", "INFO", "WARN", "ERROR"][i as usize % 4],
                ["/orders", "/orders/{id}", "/cart", "/login", "/search"][i as usize % 5],
                200 + (i % 13 == 0) as u64 * 204,
                (i * 7919) % 900 + 3,
                (i * 31) % 50_000,
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            )
        })
        .collect();
    let batches = one_stream(&lines);
    let encoded = |t| {
        encode(
            &batches,
            15,
            256 * 1024,
            &ColumnChoice::default(),
            None,
            &[],
            t,
        )
        .unwrap()
    };
    let (whole, split) = (
        encoded(MessageTemplates::Off),
        encoded(MessageTemplates::Always),
    );
    assert!(split.file.len() > whole.file.len() * 97 / 100);
    assert!(!encoded(MessageTemplates::WhenSmaller).templated);
}
