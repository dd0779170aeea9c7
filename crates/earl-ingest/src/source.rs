//! Where rows come from: local Parquet files, an Arrow `save_to_disk` folder, or JSONL with
//! an image folder, listed as *units* in a fixed order so ranks and resumes agree on them.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Parquet,
    /// Arrow IPC stream files as written by `datasets.Dataset.save_to_disk`.
    Arrow,
    Jsonl,
}

/// A set of input files of one format.
#[derive(Debug, Clone)]
pub struct Source {
    /// Folder that relative image paths are resolved against.
    pub root: PathBuf,
    pub format: SourceFormat,
    pub files: Vec<PathBuf>,
}

/// The smallest piece of input a rank owns and a cursor points into.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub file: usize,
    /// The Parquet row group, for Parquet sources.
    pub row_group: Option<usize>,
    /// Rows, when known before reading (Parquet); 0 otherwise.
    pub rows: u64,
    pub split: String,
}

impl Source {
    /// Lists the input files under `path` (a file or a folder), keeping those whose path
    /// relative to the folder matches `pattern` (`*` wildcards) when one is given.
    pub fn local(path: &Path, format: &str, pattern: Option<&str>) -> Result<Source, String> {
        let (root, mut files) = if path.is_file() {
            let root = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            (root, vec![path.to_path_buf()])
        } else if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files).map_err(|e| format!("{}: {e}", path.display()))?;
            (path.to_path_buf(), files)
        } else {
            return Err(format!(
                "{}: no such file or folder (for a Hub dataset give its id, e.g. TIGER-Lab/OmniEdit-Filtered-1.2M)",
                path.display()
            ));
        };
        files.sort();
        let format = match format {
            "parquet" => SourceFormat::Parquet,
            "arrow" => SourceFormat::Arrow,
            "jsonl" => SourceFormat::Jsonl,
            _ => guess_format(&files).ok_or_else(|| {
                format!(
                    "{}: found no .parquet, .arrow or .jsonl files",
                    path.display()
                )
            })?,
        };
        let ext = match format {
            SourceFormat::Parquet => "parquet",
            SourceFormat::Arrow => "arrow",
            SourceFormat::Jsonl => "jsonl",
        };
        files.retain(|f| f.extension().is_some_and(|e| e == ext));
        if let Some(p) = pattern.filter(|_| path.is_dir()) {
            let matching: Vec<PathBuf> = files
                .iter()
                .filter(|f| {
                    f.strip_prefix(&root)
                        .is_ok_and(|r| glob_match(p, &r.to_string_lossy()))
                })
                .cloned()
                .collect();
            // A folder that does not mirror the Hub layout still works: fall back to all files.
            if !matching.is_empty() {
                files = matching;
            }
        }
        if files.is_empty() {
            return Err(format!("{}: no .{ext} files found", path.display()));
        }
        Ok(Source {
            root,
            format,
            files,
        })
    }

    /// Files already listed (e.g. a Hub snapshot), relative image paths resolved from `root`.
    pub fn from_files(
        root: PathBuf,
        mut files: Vec<PathBuf>,
        format: &str,
    ) -> Result<Source, String> {
        files.sort();
        let format = match format {
            "arrow" => SourceFormat::Arrow,
            "jsonl" => SourceFormat::Jsonl,
            "parquet" => SourceFormat::Parquet,
            _ => guess_format(&files).ok_or("no .parquet, .arrow or .jsonl files")?,
        };
        if files.is_empty() {
            return Err("no files".into());
        }
        Ok(Source {
            root,
            format,
            files,
        })
    }

    /// The units of every file, with the split each belongs to, and the files that could
    /// not even be opened (with the reason).
    pub fn units(&self, default_split: &str) -> (Vec<Unit>, Vec<(PathBuf, String)>) {
        let mut units = Vec::new();
        let mut bad = Vec::new();
        for (i, path) in self.files.iter().enumerate() {
            let split = split_of(path, &self.root).unwrap_or_else(|| default_split.to_string());
            match self.format {
                SourceFormat::Parquet => match parquet_row_groups(path) {
                    Ok(groups) => {
                        units.extend(groups.into_iter().enumerate().map(|(g, rows)| Unit {
                            file: i,
                            row_group: Some(g),
                            rows,
                            split: split.clone(),
                        }))
                    }
                    Err(e) => bad.push((path.clone(), e)),
                },
                _ => units.push(Unit {
                    file: i,
                    row_group: None,
                    rows: 0,
                    split,
                }),
            }
        }
        (units, bad)
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn guess_format(files: &[PathBuf]) -> Option<SourceFormat> {
    let has = |ext: &str| {
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == ext))
    };
    [
        ("parquet", SourceFormat::Parquet),
        ("arrow", SourceFormat::Arrow),
        ("jsonl", SourceFormat::Jsonl),
    ]
    .into_iter()
    .find(|(ext, _)| has(ext))
    .map(|(_, f)| f)
}

fn parquet_row_groups(path: &Path) -> Result<Vec<u64>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| format!("unreadable Parquet: {e}"))?;
    Ok(reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows() as u64)
        .collect())
}

const SPLITS: &[&str] = &["train", "validation", "valid", "val", "dev", "test"];

/// The split a file belongs to: `train-00000-of-00004.parquet` or `train/…` say `train`.
fn split_of(path: &Path, root: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy().to_string();
    let head = stem
        .split(['-', '_', '.'])
        .next()
        .unwrap_or_default()
        .to_string();
    if SPLITS.contains(&head.as_str()) {
        return Some(head);
    }
    let rel = path.strip_prefix(root).ok()?;
    rel.parent()?
        .components()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .find(|c| SPLITS.contains(&c.as_str()))
}

/// `*` matches any run of characters; everything else matches itself.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "data/*.parquet",
            "data/train-00000-of-00001.parquet"
        ));
        assert!(glob_match("data/train-*", "data/train-1.parquet"));
        assert!(!glob_match("data/dev-*", "data/train-1.parquet"));
        assert!(glob_match("*", "x"));
    }

    #[test]
    fn splits_from_names() {
        let root = Path::new("/r");
        assert_eq!(
            split_of(Path::new("/r/data/dev-00001-of-00004.parquet"), root).as_deref(),
            Some("dev")
        );
        assert_eq!(
            split_of(Path::new("/r/data/train/data-00000-of-00001.arrow"), root).as_deref(),
            Some("train")
        );
        assert_eq!(split_of(Path::new("/r/metadata.jsonl"), root), None);
    }
}
