use super::*;

#[test]
fn the_example_configuration_loads_and_matches_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/sunset.example.toml");
    let loaded = Settings::load(Some(&path)).expect("the example loads");
    let defaults = Settings::default();
    assert_eq!(
        loaded.retirement.check_schedule,
        defaults.retirement.check_schedule
    );
    assert_eq!(loaded.retirement.critical.min_notice_days, 90);
    assert_eq!(
        loaded.notifications.concurrency,
        defaults.notifications.concurrency
    );
    assert!(loaded.notifications.smtp.is_none());
}

#[test]
fn the_retirement_policy_is_read_per_tier_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.toml");
    let load = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        Settings::load(Some(&file))
    };
    let s = load("[retirement.critical]\nmin_notice_days = 120\nreminders = [\"0 0 8 * * *\"]\n")
        .unwrap();
    let policy = s.retirement.policy().unwrap();
    let critical = policy.tier(crate::domain::Tier::Critical);
    assert_eq!(critical.min_notice, chrono::Duration::days(120));
    assert_eq!(critical.reminders.len(), 1);
    // The tiers not named keep their defaults.
    let high = policy.tier(crate::domain::Tier::High);
    assert_eq!(high.min_notice, chrono::Duration::days(30));

    let err = load("[retirement.high]\nmin_notice_days = 30\nreminders = [\"every monday\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("retirement.high.reminders") && err.contains("every monday"),
        "{err}"
    );
    let err = load("[retirement.standard]\nmin_notice_days = 0\nreminders = []\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("retirement.standard.min_notice_days"), "{err}");
    let err = load("[retirement]\nno_traffic_days = 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("retirement.no_traffic_days"), "{err}");
}

#[test]
fn notification_settings_are_checked_at_start_up_and_the_smtp_password_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("n.toml");
    let load = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        Settings::load(Some(&file))
    };
    let s = load(
        "[notifications.smtp]\nhost = \"smtp.example.org\"\nusername = \"sunset\"\n\
         password = \"hunter2\"\nfrom = \"sunset <sunset@example.org>\"\n",
    )
    .unwrap();
    let smtp = s.notifications.smtp.as_ref().unwrap();
    assert_eq!(smtp.port, 587);
    assert_eq!(smtp.security, notifiers::email::Security::StartTls);
    let printed = format!("{s:?} {:?}", smtp.to_smtp_settings());
    assert!(!printed.contains("hunter2"), "{printed}");

    let err = load("[notifications.smtp]\nhost = \"h\"\nfrom = \"not an address\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("notifications.smtp") && err.contains("not an address"),
        "{err}"
    );

    // A broken template override stops start-up with its name.
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("notice.txt"), "{% if %}").unwrap();
    let err = load(&format!(
        "[notifications]\ntemplates_dir = {:?}\n",
        templates.display().to_string()
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("notice.txt"), "{err}");
}

#[test]
fn the_database_password_never_shows_in_debug_output() {
    let mut s = Settings::default();
    s.database.url = Some(DatabaseUrl::new("postgres://sunset:hunter2@db/sunset"));
    let printed = format!("{s:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("postgres://[redacted]"));
}

#[test]
fn a_file_overrides_defaults_and_unknown_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "listen = \"127.0.0.1:9999\"\n[audit]\ncheckpoint_schedule = \"0 0 * * * *\"\n",
    )
    .unwrap();
    let s = Settings::load(Some(&good)).unwrap();
    assert_eq!(s.listen.port(), 9999);
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "lisen = \"127.0.0.1:9999\"\n").unwrap();
    assert!(
        Settings::load(Some(&typo))
            .unwrap_err()
            .to_string()
            .contains("lisen")
    );
    let scan = dir.path().join("scan.toml");
    std::fs::write(
        &scan,
        "[[scan.sources]]\nname = \"gw\"\npaths = [\"/var/log/gw/*.jsonl\"]\npath_pattern = \"/v1/models/(?P<model>[^/]+)\"\n",
    )
    .unwrap();
    let e = Settings::load(Some(&scan)).unwrap_err().to_string();
    assert!(
        e.contains("scan source \"gw\"") && e.contains("version"),
        "{e}"
    );
    let cron = dir.path().join("cron.toml");
    std::fs::write(&cron, "[audit]\ncheckpoint_schedule = \"every hour\"\n").unwrap();
    assert!(
        Settings::load(Some(&cron))
            .unwrap_err()
            .to_string()
            .contains("checkpoint_schedule")
    );
    let retention = dir.path().join("retention.toml");
    std::fs::write(&retention, "[inventory]\nchange_retention_days = 0\n").unwrap();
    assert!(
        Settings::load(Some(&retention))
            .unwrap_err()
            .to_string()
            .contains("change_retention_days 1 to 3650")
    );
}

#[test]
fn object_storage_and_hsm_settings_are_checked_and_a_pin_has_no_place_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.toml");
    let load = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        Settings::load(Some(&file)).map_err(|e| e.to_string())
    };
    let s = load("[vault.blobs]\nurl = \"s3://models-prod/sunset/blobs/\"\nendpoint = \"https://s3.example.org\"\n\n[vault.kek]\nbackend = \"pkcs11\"\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\npin_file = \"/run/secrets/pin\"\n").unwrap();
    assert_eq!(
        BucketUrl::parse(s.vault.blobs.url.as_deref().unwrap()).unwrap(),
        BucketUrl {
            bucket: "models-prod".into(),
            prefix: "sunset/blobs".into()
        }
    );
    assert_eq!(s.vault.kek.backend, KekBackend::Pkcs11);
    for (toml, needle) in [
        (
            "[vault.blobs]\nurl = \"https://bucket\"\n",
            "must start with s3://",
        ),
        (
            "[vault.blobs]\nurl = \"s3://Bad_Bucket\"\n",
            "is not a bucket name",
        ),
        (
            "[vault.blobs]\nurl = \"s3://bucket/../x\"\n",
            "without . or .. parts",
        ),
        (
            "[vault.blobs]\nendpoint = \"https://s3.example.org\"\n",
            "need a url",
        ),
        (
            "[vault.blobs]\nurl = \"s3://bucket\"\nendpoint = \"http://10.0.0.1:9000\"\n",
            "allow_http",
        ),
        (
            "[vault.blobs]\nurl = \"s3://bucket\"\nsecret_access_key = \"x\"\n",
            "secret_access_key",
        ),
        (
            "[vault.kek]\nbackend = \"pkcs11\"\n",
            "needs vault.kek.module",
        ),
        (
            "[vault.kek]\nbackend = \"pkcs11\"\nmodule = \"/m.so\"\npin = \"1234\"\n",
            "pin",
        ),
        (
            "[vault.kek]\nkey_label_prefix = \"a b\"\n",
            "key_label_prefix",
        ),
    ] {
        let err = load(toml).expect_err(toml);
        assert!(err.contains(needle), "{toml}: {err}");
        assert!(!err.contains("1234"), "the PIN is never repeated: {err}");
    }
}

#[test]
fn traces_are_off_by_default_and_a_bad_endpoint_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("traces.toml");
    let load = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        Settings::load(Some(&file)).map_err(|e| e.to_string())
    };
    assert_eq!(Settings::default().traces.traces_url(), None);
    let s = load("[traces]\nendpoint = \"http://127.0.0.1:4318/\"\n").unwrap();
    assert_eq!(
        s.traces.traces_url().as_deref(),
        Some("http://127.0.0.1:4318/v1/traces")
    );
    for (toml, needle) in [
        (
            "[traces]\nendpoint = \"ftp://collector\"\n",
            "http:// or https://",
        ),
        (
            "[traces]\nendpoint = \"https://user:secret@collector\"\n",
            "must not hold credentials",
        ),
        ("[traces]\nsample_ratio = 1.5\n", "between 0.0 and 1.0"),
        ("[traces]\nservice_name = \"\"\n", "1 to 64"),
    ] {
        let e = load(toml).unwrap_err();
        assert!(e.contains(needle), "{toml}: {e}");
        assert!(!e.contains("secret@"), "{e}");
    }
}

#[test]
fn trusted_proxies_are_ranges_or_addresses_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxies.toml");
    let load = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        Settings::load(Some(&file)).map_err(|e| e.to_string())
    };
    let s = load("[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\n")
        .unwrap();
    assert_eq!(s.http.trusted_proxies.len(), 3);
    assert_eq!(s.http.client_ip_header, "x-forwarded-for");
    for (toml, needle) in [
        (
            "[http]\ntrusted_proxies = [\"10.0.0/33\"]\n",
            "\"10.0.0/33\" is neither an address nor a CIDR range",
        ),
        (
            "[http]\nclient_ip_header = \"bad header\"\n",
            "not a header name",
        ),
    ] {
        let e = load(toml).unwrap_err();
        assert!(e.contains(needle), "{toml}: {e}");
    }
}
