//! Parsing the realistic queries of the reference (testdata/insights/realistic.insights, one per
//! line, verbatim from AWS's documentation) and the shape of what comes out.

use logwell_insights::*;

const REALISTIC: &str = include_str!("../../../testdata/insights/realistic.insights");

/// Queries in the file that use commands not parsed yet, or are malformed on purpose.
const NOT_YET: &[(&str, &str)] = &[(
    "referrer= http://",
    "AWS's own example has an unquoted URL: it must fail cleanly",
)];

#[test]
fn realistic_queries_parse_or_fail_with_a_position() {
    let mut parsed = 0;
    for (i, q) in REALISTIC
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        match (parse(q), NOT_YET.iter().find(|(k, _)| q.contains(k))) {
            (Ok(_), None) => parsed += 1,
            (Err(e), Some(_)) => assert!(e.line == 1 && e.column > 1, "query {}: {e}", i + 1),
            (Ok(_), Some((_, why))) => panic!(
                "query {} parsed but was expected to fail ({why}): {q}",
                i + 1
            ),
            (Err(e), None) => panic!("query {} does not parse: {e}\n{q}", i + 1),
        }
    }
    assert_eq!(parsed, 31);
}

fn field(s: &str) -> Expr {
    Expr::Field(s.into())
}

#[test]
fn operators_bind_as_documented() {
    let q =
        parse("filter a = 1 or b > 2 and not c like /x/i | filter 2 ^ 3 ^ 2 = -x * 4 + 1").unwrap();
    let Command::Filter(e) = &q.commands[0] else {
        panic!()
    };
    // or < and < not < comparison/like
    let Expr::Binary {
        op: BinaryOp::Or,
        right,
        ..
    } = e
    else {
        panic!("{e:?}")
    };
    let Expr::Binary {
        op: BinaryOp::And,
        right: not,
        ..
    } = right.as_ref()
    else {
        panic!()
    };
    let Expr::Unary {
        op: UnaryOp::Not,
        expr: like,
    } = not.as_ref()
    else {
        panic!("{not:?}")
    };
    assert_eq!(
        **like,
        Expr::Like {
            expr: Box::new(field("c")),
            pattern: Box::new(Expr::Regex(Regex {
                pattern: "x".into(),
                flags: "i".into()
            })),
            negated: false
        }
    );
    let Command::Filter(Expr::Binary {
        op: BinaryOp::Eq,
        left,
        right,
    }) = &q.commands[1]
    else {
        panic!()
    };
    // ^ is right-associative: 2 ^ (3 ^ 2)
    let Expr::Binary {
        op: BinaryOp::Pow,
        right: pow_right,
        ..
    } = left.as_ref()
    else {
        panic!()
    };
    assert!(matches!(
        pow_right.as_ref(),
        Expr::Binary {
            op: BinaryOp::Pow,
            ..
        }
    ));
    // unary minus binds tighter than *, which binds tighter than +
    let Expr::Binary {
        op: BinaryOp::Add,
        left: mul,
        ..
    } = right.as_ref()
    else {
        panic!()
    };
    let Expr::Binary {
        op: BinaryOp::Mul,
        left: neg,
        ..
    } = mul.as_ref()
    else {
        panic!()
    };
    assert!(matches!(
        neg.as_ref(),
        Expr::Unary {
            op: UnaryOp::Neg,
            ..
        }
    ));
}

#[test]
fn stats_names_columns_by_alias_or_source_text() {
    let q = parse("stats count(*) as n, avg( latency ) by bin(5m), status | sort n | limit any 5")
        .unwrap();
    let Command::Stats { aggregates, by, .. } = &q.commands[0] else {
        panic!()
    };
    assert_eq!(aggregates[0].name(), "n");
    assert_eq!(
        aggregates[0].expr,
        Expr::Call {
            name: "count".into(),
            args: vec![Expr::Star]
        }
    );
    assert_eq!(aggregates[1].name(), "avg( latency )");
    assert_eq!(
        by[0].expr,
        Expr::Call {
            name: "bin".into(),
            args: vec![Expr::Period {
                value: 5,
                unit: PeriodUnit::Minute
            }]
        }
    );
    assert_eq!(by[1].name(), "status");
    assert_eq!(
        q.commands[1],
        Command::Sort(vec![SortKey {
            expr: field("n"),
            ascending: false
        }])
    );
    assert_eq!(q.commands[2], Command::Limit { n: 5, any: true });
}

#[test]
fn fields_accept_at_dots_digits_backticks_and_comments() {
    let q = parse(
        "# newest first\nfields @timestamp, requestParameters.items.0.instanceId, `foo-bar`, @`aws:tag`\n# done\n| dedup @logStream",
    )
    .unwrap();
    let Command::Fields(f) = &q.commands[0] else {
        panic!()
    };
    let names: Vec<_> = f.iter().map(|p| p.expr.clone()).collect();
    assert_eq!(
        names,
        vec![
            field("@timestamp"),
            field("requestParameters.items.0.instanceId"),
            field("foo-bar"),
            field("@aws:tag")
        ]
    );
    assert_eq!(q.commands[1], Command::Dedup(vec!["@logStream".into()]));
}

#[test]
fn parse_globs_and_regexes() {
    let q =
        parse(r#"parse @message "[*] * The error was: *" as level, config, exception"#).unwrap();
    assert_eq!(
        q.commands[0],
        Command::Parse {
            field: "@message".into(),
            pattern: ParsePattern::Glob("[*] * The error was: *".into()),
            names: vec!["level".into(), "config".into(), "exception".into()]
        }
    );
    let q = parse(r"parse @message /\[(?<level>\S+)\]\s+(?<config>\{.*\})/").unwrap();
    let Command::Parse {
        pattern: ParsePattern::Regex(r),
        names,
        ..
    } = &q.commands[0]
    else {
        panic!()
    };
    assert!(r.pattern.starts_with(r"\[(?<level>") && names.is_empty());
    let err = parse(r#"parse @message "a * b *" as one"#).unwrap_err();
    assert!(err.message.contains("2 '*' but 1 names"), "{err}");
}

#[test]
fn errors_name_line_column_and_what_was_expected() {
    let err = parse("fields @message\n| stats count(*) by").unwrap_err();
    assert_eq!((err.line, err.column), (2, 20));
    assert!(err.message.starts_with("expected"), "{err}");
    let err = parse("fields a | bogus b").unwrap_err();
    assert_eq!((err.line, err.column, err.start_offset), (1, 12, 11));
    assert!(
        err.message.contains("'stats' command") || err.message.contains("command"),
        "{err}"
    );
    assert!(parse("limit 0").is_err());
    assert!(parse("").unwrap().commands.is_empty());
}

#[test]
fn join_subqueries_pattern_diff_and_offset_parse() {
    let q = parse(
        "filter status >= 500 | join type=left left=api right=l where api.id = l.id and api.n=l.n (SOURCE '/g' | filter x > 1) | pattern @message | diff previousWeek",
    )
    .unwrap();
    let Command::Join(j) = &q.commands[1] else {
        panic!("{:?}", q.commands[1]);
    };
    assert!(j.keep_unmatched);
    assert_eq!((j.left.as_str(), j.right.as_str()), ("api", "l"));
    assert_eq!(
        j.on,
        vec![
            ("api.id".to_string(), "l.id".to_string()),
            ("api.n".to_string(), "l.n".to_string())
        ]
    );
    assert_eq!(j.query.commands.len(), 2);
    assert_eq!(q.commands[2], Command::Pattern(field("@message")));
    assert_eq!(q.commands[3], Command::Diff(DiffPeriod::Week));

    let q =
        parse("filter id not in (SOURCE 'g' | fields id) | stats count(*) by bin(5m) offset 1h")
            .unwrap();
    let Command::Filter(Expr::InQuery { negated, query, .. }) = &q.commands[0] else {
        panic!("{:?}", q.commands[0]);
    };
    assert!(*negated);
    assert_eq!(query.commands.len(), 2);
    let Command::Stats { offset, .. } = &q.commands[1] else {
        panic!();
    };
    assert_eq!(
        offset,
        &Some(Expr::Period {
            value: 1,
            unit: PeriodUnit::Hour
        })
    );
    // A field may still be called offset, pattern or diff.
    assert!(parse("stats count(*) by offset | fields pattern, diff").is_ok());
    assert!(parse("join left=a right=b where a.x = b.x").is_err());
}

#[test]
fn lookup_names_its_table_keys_and_outputs() {
    let q = parse("lookup user_data id as userId, org OUTPUTNEW name, email").unwrap();
    assert_eq!(
        q.commands[0],
        Command::Lookup(Lookup {
            table: "user_data".into(),
            keys: vec![("id".into(), "userId".into()), ("org".into(), "org".into())],
            output: vec!["name".into(), "email".into()],
            only_new: true,
        })
    );
    assert!(parse("lookup t id").is_err(), "OUTPUT is required");
}

#[test]
fn the_2026_row_commands_parse() {
    let q = parse(
        "fields bytes | accum bytes as total | autoregress bytes p=1-4 | countFrequent method, status \
         | filldown host | sessionize userId, deviceId maxspan 1h as s | addtotals fieldname=RowSum col=true a, b \
         | fillmissing with 0 for n, 'none' for host",
    )
    .unwrap();
    assert_eq!(
        q.commands[1],
        Command::Accum {
            field: "bytes".into(),
            alias: Some("total".into())
        }
    );
    assert_eq!(
        q.commands[2],
        Command::Autoregress {
            field: "bytes".into(),
            alias: None,
            from: 1,
            to: 4
        }
    );
    assert_eq!(
        q.commands[3],
        Command::CountFrequent(vec!["method".into(), "status".into()])
    );
    assert_eq!(q.commands[4], Command::Filldown(vec!["host".into()]));
    assert_eq!(
        q.commands[5],
        Command::Sessionize {
            fields: vec!["userId".into(), "deviceId".into()],
            maxspan: Some(Expr::Period {
                value: 1,
                unit: PeriodUnit::Hour
            }),
            alias: Some("s".into())
        }
    );
    assert_eq!(
        q.commands[6],
        Command::AddTotals {
            fieldname: "RowSum".into(),
            row: true,
            col: true,
            fields: vec!["a".into(), "b".into()]
        }
    );
    assert_eq!(
        q.commands[7],
        Command::FillMissing(vec![
            (Expr::Int(0), "n".into()),
            (Expr::Str("none".into()), "host".into())
        ])
    );
    assert!(parse("autoregress x p=0").is_err());
    assert!(parse("addtotals row=maybe").is_err());
    assert!(
        parse("fields accum, filldown").is_ok(),
        "still usable as field names"
    );
}

#[test]
fn outlier_appendcols_and_cidrlookup_parse() {
    let q = parse(
        "fields cpu, memory | outlier action=remove param=3.0 uselower=true mark=true cpu memory \
         | appendcols override=true ( SOURCE 'lg' | stats avg(latency) as avgLat by svc ) \
         | cidrlookup net_table srcAddr as range OUTPUT region, owner as team",
    )
    .unwrap();
    assert_eq!(
        q.commands[1],
        Command::Outlier {
            remove: true,
            param: 3.0,
            use_lower: true,
            mark: true,
            fields: vec!["cpu".into(), "memory".into()]
        }
    );
    let Command::AppendCols {
        override_fields,
        max,
        query,
    } = &q.commands[2]
    else {
        panic!("{:?}", q.commands[2]);
    };
    assert!(*override_fields && *max == 10_000 && query.commands.len() == 2);
    assert_eq!(
        q.commands[3],
        Command::CidrLookup {
            table: "net_table".into(),
            ip_field: "srcAddr".into(),
            cidr_column: Some("range".into()),
            output: vec![
                ("region".into(), "region".into()),
                ("owner".into(), "team".into())
            ],
            only_new: false,
        }
    );
    assert!(parse("outlier action=explode x").is_err());
    assert!(parse("appendcols max=0 (fields a)").is_err());
}

#[test]
fn indexes_and_quoted_members_are_path_segments() {
    let q =
        parse("fields items[1].id, js.`special-char`, @`odd name`, tags[0] | filter x in [1, 2]")
            .unwrap();
    let Command::Fields(ps) = &q.commands[0] else {
        panic!()
    };
    let names: Vec<&Expr> = ps.iter().map(|p| &p.expr).collect();
    assert_eq!(
        names,
        vec![
            &field("items.1.id"),
            &field("js.special-char"),
            &field("@odd name"),
            &field("tags.0")
        ]
    );
}
