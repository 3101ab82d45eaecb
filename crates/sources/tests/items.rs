//! Every kind of item against the real thing: a SQLite database written by
//! another process during the backup, commands and scripts run by the
//! shell, and a PostgreSQL cluster started from Debian's binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use coffer_engine::backup::{BackupOptions, Progress};
use coffer_engine::keys::GENERATED_KEY_KDF;
use coffer_engine::point::Consistency;
use coffer_engine::restore::RestoreProgress;
use coffer_engine::{Storage, Vault, VaultKey};
use coffer_sources::{
    back_up, kind_of, restore, verify, CommandSpec, Destination, Error, Hook, ItemDef, Kind,
    PostgresMode, PostgresSpec,
};
use coffer_testservers::Postgres;

fn vault(dir: &Path) -> Vault {
    let storage = Storage::open(dir.to_str().unwrap()).unwrap();
    let (key, _) = VaultKey::generate();
    Vault::init(&storage, &key, GENERATED_KEY_KDF).unwrap();
    Vault::open(storage, &key, None).unwrap()
}

fn item(name: &str, kind: Kind) -> ItemDef {
    ItemDef {
        name: name.into(),
        kind,
        paths: Vec::new(),
        excludes: Vec::new(),
        postgresql: None,
        command: None,
        disk: None,
        pre: None,
        post: None,
    }
}

fn hook(command: &str) -> Hook {
    Hook {
        command: command.into(),
        timeout_secs: 10,
        retries: 0,
        continue_on_failure: false,
    }
}

fn consistent_rows(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    let rows: i64 = c
        .query_row("SELECT count(*) FROM rows", [], |r| r.get(0))
        .unwrap();
    let n: i64 = c
        .query_row("SELECT n FROM counter", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, n, "the copy is not one transaction's view");
    rows
}

#[test]
fn sqlite_is_copied_consistently_while_another_process_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("vault"));
    let db = tmp.path().join("live/app.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let mut writer = coffer_testservers::start_sqlite_writer(&db);
    std::thread::sleep(Duration::from_millis(300));
    let mut it = item("app-db", Kind::Sqlite);
    it.paths = vec![db.to_string_lossy().into()];
    let captured = back_up(&v, &it, &BackupOptions::default(), &Progress::default()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert!(captured.warnings.is_empty());
    let point = v.read_point(&captured.report.point).unwrap();
    assert_eq!(
        point.manifest.consistency,
        Consistency::ApplicationConsistent
    );
    assert_eq!(kind_of(&point), Some(Kind::Sqlite));

    // Under a target: the same path below it, one transaction's view.
    let target = tmp.path().join("restored");
    let to = Destination {
        target: Some(target.clone()),
        ..Default::default()
    };
    let said = restore(&v, &it, &point, &to, &RestoreProgress::default()).unwrap();
    assert!(said.contains("2 tables"), "{said}");
    let restored = target.join(db.strip_prefix("/").unwrap());
    let at_backup = consistent_rows(&restored);
    assert!(at_backup > 0);
    // The writer went on after the backup: the live database has more.
    assert!(consistent_rows(&db) > at_backup);

    // Into the existing database, only with consent; it then holds the
    // point's rows again.
    let err = restore(
        &v,
        &it,
        &point,
        &Destination::default(),
        &RestoreProgress::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("allow overwriting"), "{err}");
    let to = Destination {
        overwrite: true,
        ..Default::default()
    };
    restore(&v, &it, &point, &to, &RestoreProgress::default()).unwrap();
    assert_eq!(consistent_rows(&db), at_backup);

    // The drill restores into a scratch area of its own and removes it.
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let said = verify(&v, &it, &point, Some(&scratch)).unwrap();
    assert!(said.contains("integrity check ok"), "{said}");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);

    // A wrong path is an error and creates nothing.
    it.paths = vec![tmp.path().join("nope.db").to_string_lossy().into()];
    let err = back_up(&v, &it, &BackupOptions::default(), &Progress::default()).unwrap_err();
    assert!(err.to_string().contains("no database file"), "{err}");
    assert!(!tmp.path().join("nope.db").exists());
}

#[test]
fn commands_stream_and_restore_through_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("vault"));
    let out = tmp.path().join("restored.bin");
    let log = tmp.path().join("hooks.log");
    let mut it = item("etcd", Kind::Command);
    // 3 MB of reproducible bytes: several chunks.
    it.command = Some(CommandSpec {
        backup: "head -c 3000000 /dev/zero | tr '\\0' 'x'; echo end".into(),
        restore: Some(format!("cat > {}", out.display())),
        file_name: "snapshot.db".into(),
        application_consistent: false,
    });
    it.pre = Some(hook(&format!("echo pre:$COFFER_ITEM >> {}", log.display())));
    it.post = Some(hook(&format!("echo post >> {}", log.display())));
    let captured = back_up(&v, &it, &BackupOptions::default(), &Progress::default()).unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre:etcd\npost\n");
    let point = v.read_point(&captured.report.point).unwrap();
    assert_eq!(
        point.manifest.consistency,
        Consistency::ApplicationConsistent
    );
    assert_eq!(point.manifest.stats.bytes_read, 3_000_004);
    let said = restore(
        &v,
        &it,
        &point,
        &Destination::default(),
        &RestoreProgress::default(),
    )
    .unwrap();
    assert!(said.contains("3000004 bytes piped"), "{said}");
    let restored = std::fs::read(&out).unwrap();
    assert_eq!(restored.len(), 3_000_004);
    assert!(restored.ends_with(b"xend\n"));
    // With a target, the output comes back as a file.
    let to = Destination {
        target: Some(tmp.path().join("t")),
        ..Default::default()
    };
    restore(&v, &it, &point, &to, &RestoreProgress::default()).unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("t/snapshot.db")).unwrap(),
        restored
    );
    assert!(verify(&v, &it, &point, None)
        .unwrap()
        .contains("3000004 bytes"));

    // A command that fails after writing commits nothing.
    let before = v.points().unwrap().len();
    it.command.as_mut().unwrap().backup = "echo half; echo 'etcd unreachable' >&2; exit 2".into();
    let err = back_up(&v, &it, &BackupOptions::default(), &Progress::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("status 2") && msg.contains("etcd unreachable"),
        "{msg}"
    );
    assert_eq!(v.points().unwrap().len(), before);
    // …and the post script still ran after it.
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "pre:etcd\npost\npre:etcd\npost\n"
    );

    // A failing pre script stops the backup, unless told to go on; then
    // the point is only crash-consistent and the job says why.
    it.command.as_mut().unwrap().backup = "echo data".into();
    it.pre = Some(hook("echo cannot freeze >&2; exit 1"));
    let err = back_up(&v, &it, &BackupOptions::default(), &Progress::default()).unwrap_err();
    assert!(
        matches!(err, Error::PreScript(ref m) if m.contains("cannot freeze")),
        "{err}"
    );
    assert_eq!(v.points().unwrap().len(), before);
    it.pre.as_mut().unwrap().continue_on_failure = true;
    let captured = back_up(&v, &it, &BackupOptions::default(), &Progress::default()).unwrap();
    assert_eq!(
        captured.report.manifest.consistency,
        Consistency::CrashConsistent
    );
    assert!(
        captured.warnings[0].contains("cannot freeze"),
        "{:?}",
        captured.warnings
    );
}

#[test]
fn settings_are_checked_with_the_field_named() {
    let mut it = item("x", Kind::Postgresql);
    let err = it.validate().unwrap_err().to_string();
    assert!(err.starts_with("postgresql:"), "{err}");
    it.postgresql = Some(PostgresSpec {
        connection: "host=db password=secret".into(),
        database: Some("app".into()),
        mode: PostgresMode::Database,
        bin_dir: None,
    });
    let err = it.validate().unwrap_err().to_string();
    assert!(err.contains("password file"), "{err}");
    let mut it = item("x", Kind::Sqlite);
    it.paths = vec!["/a.db".into(), "/b.db".into()];
    assert!(it
        .validate()
        .unwrap_err()
        .to_string()
        .contains("exactly one"));
    let mut it = item("x", Kind::Command);
    it.command = Some(CommandSpec {
        backup: "true".into(),
        restore: None,
        file_name: "a/b".into(),
        application_consistent: false,
    });
    assert!(it
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("command.file_name"));
    let mut it = item("x", Kind::Directory);
    it.paths = vec!["relative".into()];
    assert!(it
        .validate()
        .unwrap_err()
        .to_string()
        .contains("not absolute"));
}

fn pg_item(pg: &Postgres, mode: PostgresMode, database: Option<&str>) -> ItemDef {
    let mut it = item("pg", Kind::Postgresql);
    it.postgresql = Some(PostgresSpec {
        connection: pg.connection(),
        database: database.map(Into::into),
        mode,
        bin_dir: Some(pg.bin_dir.to_string_lossy().into()),
    });
    it
}

#[test]
fn postgresql_database_dump_restores_into_a_running_server() {
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql(
        "shop",
        "CREATE TABLE orders (id serial PRIMARY KEY, item text, qty int);
         INSERT INTO orders (item, qty) SELECT 'item ' || g, g FROM generate_series(1, 5000) g;",
    );
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("vault"));
    let it = pg_item(&pg, PostgresMode::Database, Some("shop"));
    let captured = back_up(&v, &it, &BackupOptions::default(), &Progress::default()).unwrap();
    let point = v.read_point(&captured.report.point).unwrap();
    assert_eq!(point.manifest.paths, vec![b"/shop.dump".to_vec()]);
    let digest = "SELECT count(*), sum(qty), md5(string_agg(item, ',' ORDER BY id)) FROM orders";
    let before = pg.sql("shop", digest);

    // Changes after the backup are undone by the restore.
    pg.sql(
        "shop",
        "DELETE FROM orders WHERE id % 2 = 0; INSERT INTO orders (item, qty) VALUES ('late', 1)",
    );
    assert_ne!(pg.sql("shop", digest), before);
    let said = restore(
        &v,
        &it,
        &point,
        &Destination::default(),
        &RestoreProgress::default(),
    )
    .unwrap();
    assert!(said.contains("database shop restored"), "{said}");
    assert_eq!(pg.sql("shop", digest), before);
    let said = verify(&v, &it, &point, None).unwrap();
    assert!(said.contains("pg_restore reads its"), "{said}");

    // A database that is not there fails the backup with pg_dump's words.
    let missing = pg_item(&pg, PostgresMode::Database, Some("nope"));
    let err = back_up(
        &v,
        &missing,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("pg_dump exited"), "{err}");
}

#[test]
fn postgresql_cluster_base_backup_starts_as_a_server() {
    let pg = Postgres::start();
    pg.sql(
        "postgres",
        "CREATE TABLE t AS SELECT g AS n FROM generate_series(1, 1000) g",
    );
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("vault"));
    let it = pg_item(&pg, PostgresMode::Cluster, None);
    let captured = back_up(&v, &it, &BackupOptions::default(), &Progress::default()).unwrap();
    let point = v.read_point(&captured.report.point).unwrap();
    assert!(verify(&v, &it, &point, None)
        .unwrap()
        .contains("base backup"));
    let err = restore(
        &v,
        &it,
        &point,
        &Destination::default(),
        &RestoreProgress::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("give a target"), "{err}");
    // Unpacked into the cluster directory of a second server, which then
    // starts on it and holds the table.
    let data: PathBuf = pg.dir.path().join("restored");
    let to = Destination {
        target: Some(data.clone()),
        ..Default::default()
    };
    restore(&v, &it, &point, &to, &RestoreProgress::default()).unwrap();
    assert!(data.join("PG_VERSION").exists());
    let ok = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&data)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = pg
        .as_owner("pg_ctl")
        .arg("-D")
        .arg(&data)
        .args(["-w", "-t", "60", "-l"])
        .arg(pg.dir.path().join("restored.log"))
        .arg("-o")
        .arg(format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={}",
            pg.dir.path().display()
        ))
        .arg("start")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = Command::new(pg.bin_dir.join("psql"))
        .args(["-X", "-A", "-t", "-d"])
        .arg(format!(
            "host=127.0.0.1 port={port} user=postgres dbname=postgres"
        ))
        .args(["-c", "SELECT sum(n) FROM t"])
        .output()
        .unwrap();
    let _ = pg
        .as_owner("pg_ctl")
        .arg("-D")
        .arg(&data)
        .args(["-m", "immediate", "stop"])
        .output();
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "500500");
}
