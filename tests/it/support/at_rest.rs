//! What a test app's storage holds at rest, read around the service: the folder's files
//! or the S3 server's objects (plain HTTP to the test server), and the KEK files or the
//! key objects on the token.

use super::TestApp;

impl TestApp {
    /// The ids of the blobs the store holds, sorted.
    pub async fn blobs_at_rest(&self) -> Vec<String> {
        match s3_location(self) {
            None => {
                let mut ids = Vec::new();
                walk(&self.settings.data_dir.join("blobs"), &mut |path| {
                    let root = self.settings.data_dir.join("blobs");
                    if !path.strip_prefix(&root).is_ok_and(|p| p.starts_with("tmp")) {
                        ids.push(
                            path.file_name()
                                .expect("name")
                                .to_string_lossy()
                                .into_owned(),
                        );
                    }
                });
                ids.sort();
                ids
            }
            Some((bucket, prefix)) => {
                let listing = self
                    .client
                    .get(format!("{bucket}?list-type=2&prefix={prefix}/"))
                    .header("authorization", MOTO_AUTHORIZATION)
                    .send()
                    .await
                    .expect("list objects")
                    .text()
                    .await
                    .expect("listing");
                let mut ids: Vec<String> = listing
                    .split("<Key>")
                    .skip(1)
                    .filter_map(|k| k.split("</Key>").next())
                    .filter_map(|k| k.rsplit('/').next().map(str::to_owned))
                    .collect();
                ids.sort();
                ids
            }
        }
    }

    /// A blob's bytes as stored (ciphertext), or `None` when it is not there.
    pub async fn blob_at_rest(&self, blob_id: &str) -> Option<Vec<u8>> {
        match s3_location(self) {
            None => std::fs::read(
                self.settings
                    .data_dir
                    .join("blobs")
                    .join(&blob_id[..2])
                    .join(blob_id),
            )
            .ok(),
            Some((bucket, prefix)) => {
                let response = self
                    .client
                    .get(format!("{bucket}/{prefix}/{}/{blob_id}", &blob_id[..2]))
                    .header("authorization", MOTO_AUTHORIZATION)
                    .send()
                    .await
                    .expect("get object");
                response
                    .status()
                    .is_success()
                    .then_some(response.bytes().await.expect("object").to_vec())
            }
        }
    }

    /// Replaces a blob's bytes at rest, as damage or an attacker with storage access would.
    pub async fn put_blob_at_rest(&self, blob_id: &str, bytes: &[u8]) {
        match s3_location(self) {
            None => std::fs::write(
                self.settings
                    .data_dir
                    .join("blobs")
                    .join(&blob_id[..2])
                    .join(blob_id),
                bytes,
            )
            .expect("write blob"),
            Some((bucket, prefix)) => {
                let response = self
                    .client
                    .put(format!("{bucket}/{prefix}/{}/{blob_id}", &blob_id[..2]))
                    .body(bytes.to_vec())
                    .header("authorization", MOTO_AUTHORIZATION)
                    .send()
                    .await
                    .expect("put object");
                assert!(response.status().is_success(), "{}", response.status());
            }
        }
    }

    /// Multipart uploads begun and neither completed nor aborted (S3 only; none in the
    /// folder store, whose partial files are checked apart).
    pub async fn uploads_in_progress(&self) -> usize {
        let Some((bucket, prefix)) = s3_location(self) else {
            return 0;
        };
        let listing = self
            .client
            .get(format!("{bucket}?uploads&prefix={prefix}/"))
            .header("authorization", MOTO_AUTHORIZATION)
            .send()
            .await
            .expect("list uploads")
            .text()
            .await
            .expect("listing");
        listing.matches("<UploadId>").count()
    }

    /// The KEK epochs whose keys exist: files in the key folder, or objects on the token.
    pub fn kek_epochs_at_rest(&self) -> Vec<u32> {
        use sunset::config::KekBackend;
        match self.settings.vault.kek.backend {
            KekBackend::File => {
                let mut epochs: Vec<u32> = std::fs::read_dir(self.settings.key_dir().join("kek"))
                    .expect("kek folder")
                    .filter_map(|e| {
                        let name = e.expect("entry").file_name();
                        let name = name.to_string_lossy();
                        name.strip_prefix("kek-")?
                            .strip_suffix(".key")?
                            .parse()
                            .ok()
                    })
                    .collect();
                epochs.sort();
                epochs
            }
            KekBackend::Pkcs11 => {
                let config = sunset::vault::pkcs11_config(&self.settings.vault.kek)
                    .expect("PKCS#11 settings");
                sunset::vault::epochs_on_token(&config).expect("token readable")
            }
        }
    }
}

/// moto checks that a request is signed, not the signature (unless told to); unsigned
/// requests are anonymous and may not replace another's object.
const MOTO_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=sunset-test/20261206/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// `(http://endpoint/bucket, prefix)` when the app keeps blobs in S3.
fn s3_location(app: &TestApp) -> Option<(String, String)> {
    let blobs = &app.settings.vault.blobs;
    let url = sunset::config::BucketUrl::parse(blobs.url.as_deref()?).expect("bucket URL");
    let endpoint = blobs.endpoint.as_deref().expect("test endpoint");
    Some((format!("{endpoint}/{}", url.bucket), url.prefix))
}

fn walk(dir: &std::path::Path, found: &mut dyn FnMut(&std::path::Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            walk(&path, found);
        } else {
            found(&path);
        }
    }
}
