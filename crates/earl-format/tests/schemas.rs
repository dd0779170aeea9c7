//! `schemas/*.md` is generated from the code; this fails when the two disagree.

use earl_format::SchemaKind;

#[test]
fn schema_docs_match_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    for kind in [SchemaKind::Triplet, SchemaKind::Tokens] {
        let path = root.join(format!("{}.md", kind.tag()));
        let want = kind.describe();
        if std::env::var_os("EARL_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            have,
            want,
            "{} is stale: run `earl-data schema {} --markdown > {}` (or EARL_BLESS=1 cargo test -p earl-format)",
            path.display(),
            kind.tag(),
            path.display()
        );
    }
}
