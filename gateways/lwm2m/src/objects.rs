//! The object database: OMA object definitions (LWM2M.xsd XML) loaded from `xml_dir`, keyed by
//! object id and by name (docs/lwm2m.md §4.8). Used to type TLV and text values, to skip undefined
//! objects in auto-observe, and to describe resources.
//!
//! Invariant: loading reads every `*.xml` in the directory; a file that does not parse is a
//! start-up error naming the file (a silent skip would turn into 4.00 reads much later).

use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;

/// A resource's data type (LWM2M.xsd `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `String`.
    String,
    /// `Integer`.
    Integer,
    /// `Unsigned Integer` (1.1).
    UnsignedInteger,
    /// `Float`.
    Float,
    /// `Boolean`.
    Boolean,
    /// `Opaque`.
    Opaque,
    /// `Time`.
    Time,
    /// `Objlnk`.
    Objlnk,
    /// `Corelnk` (1.1).
    Corelnk,
    /// No type (an executable resource).
    None,
}

impl DataType {
    /// Parses the `Type` element's text.
    pub fn parse(s: &str) -> Option<DataType> {
        Some(match s.trim() {
            "String" => DataType::String,
            "Integer" => DataType::Integer,
            "Unsigned Integer" => DataType::UnsignedInteger,
            "Float" => DataType::Float,
            "Boolean" => DataType::Boolean,
            "Opaque" => DataType::Opaque,
            "Time" => DataType::Time,
            "Objlnk" => DataType::Objlnk,
            "Corelnk" => DataType::Corelnk,
            "" | "none" | "None" => DataType::None,
            _ => return None,
        })
    }

    /// The name as the XML writes it (and EMQX's `dataType`).
    pub fn name(self) -> &'static str {
        match self {
            DataType::String => "String",
            DataType::Integer => "Integer",
            DataType::UnsignedInteger => "Unsigned Integer",
            DataType::Float => "Float",
            DataType::Boolean => "Boolean",
            DataType::Opaque => "Opaque",
            DataType::Time => "Time",
            DataType::Objlnk => "Objlnk",
            DataType::Corelnk => "Corelnk",
            DataType::None => "",
        }
    }
}

/// One resource of an object definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Resource id.
    pub id: u16,
    /// Name.
    pub name: String,
    /// `R`, `W`, `RW`, `E` or empty.
    pub operations: String,
    /// `MultipleInstances` is `Multiple`.
    pub multiple: bool,
    /// `Mandatory` is `Mandatory`.
    pub mandatory: bool,
    /// Data type.
    pub data_type: DataType,
}

/// One object definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Object id.
    pub id: u16,
    /// Name.
    pub name: String,
    /// Object version (`ObjectVersion`, "1.0" when absent).
    pub version: String,
    /// `MultipleInstances` is `Multiple`.
    pub multiple: bool,
    /// Resources by id.
    pub resources: HashMap<u16, Resource>,
}

/// Why the object database did not load.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The directory cannot be read.
    #[error("xml_dir {dir}: {source}")]
    Dir {
        /// The directory.
        dir: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No `*.xml` file in the directory (EMQX: `no_xml_files_found`).
    #[error("xml_dir {0}: no *.xml object definitions found")]
    Empty(String),
    /// A file does not parse as an OMA object definition.
    #[error("{file}: {reason}")]
    Bad {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// The definitions shipped in `config/lwm2m_xml`, compiled in.
const BUILTIN: [&str; 13] = [
    include_str!("../../../config/lwm2m_xml/IPSO_Humidity-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/IPSO_Light_Control-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/IPSO_Location-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/IPSO_Temperature-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/LWM2M_Access_Control-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/LWM2M_BinaryAppDataContainer-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/LWM2M_Connectivity_Monitoring-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/LWM2M_Connectivity_Statistics-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/LWM2M_Device-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/LWM2M_Firmware_Update-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/LWM2M_Location-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/LWM2M_Security-v1_0.xml"),
    include_str!("../../../config/lwm2m_xml/LWM2M_Server-v1_0.xml"),
];

/// Object definitions by id and name.
#[derive(Debug, Clone, Default)]
pub struct ObjectDb {
    by_id: HashMap<u16, Object>,
    by_name: HashMap<String, u16>,
}

impl ObjectDb {
    /// Loads every `*.xml` in `dir`.
    pub fn load_dir(dir: &Path) -> Result<ObjectDb, LoadError> {
        let rd = std::fs::read_dir(dir).map_err(|source| LoadError::Dir {
            dir: dir.display().to_string(),
            source,
        })?;
        let mut files: Vec<_> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(LoadError::Empty(dir.display().to_string()));
        }
        let mut db = ObjectDb::default();
        for f in files {
            let bad = |reason: String| LoadError::Bad {
                file: f.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(&f).map_err(|e| bad(e.to_string()))?;
            for o in parse_xml(&text).map_err(bad)? {
                db.insert(o);
            }
        }
        Ok(db)
    }

    /// The definitions shipped in `config/lwm2m_xml` (objects 0-7, 19, 3303, 3304, 3311,
    /// 3336), compiled into the binary: used when the default `xml_dir` does not exist, e.g.
    /// when the binary runs from another directory.
    pub fn builtin() -> ObjectDb {
        let mut db = ObjectDb::default();
        for text in BUILTIN {
            // Parsed by the `builtin_matches_shipped_files` test; a bad file cannot ship.
            for o in parse_xml(text).unwrap_or_default() {
                db.insert(o);
            }
        }
        db
    }

    /// Adds (or replaces) a definition.
    pub fn insert(&mut self, o: Object) {
        self.by_name.insert(o.name.clone(), o.id);
        self.by_id.insert(o.id, o);
    }

    /// The definition of an object.
    pub fn object(&self, id: u16) -> Option<&Object> {
        self.by_id.get(&id)
    }

    /// The definition named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Object> {
        self.by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    /// The type of a resource, if defined.
    pub fn resource_type(&self, object: u16, resource: u16) -> Option<DataType> {
        self.object(object)?
            .resources
            .get(&resource)
            .map(|r| r.data_type)
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no object is defined.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

fn child_text<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    n.children()
        .find(|c| c.has_tag_name(name))
        .map(|c| c.text().unwrap_or("").trim())
}

/// Parses an OMA object definition document (`<LWM2M><Object>…</Object></LWM2M>`).
pub fn parse_xml(text: &str) -> Result<Vec<Object>, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for obj in doc.descendants().filter(|n| n.has_tag_name("Object")) {
        let id = child_text(obj, "ObjectID")
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or("Object without a valid ObjectID")?;
        let name = child_text(obj, "Name")
            .ok_or("Object without Name")?
            .to_owned();
        let version = child_text(obj, "ObjectVersion").unwrap_or("1.0").to_owned();
        let multiple = child_text(obj, "MultipleInstances") == Some("Multiple");
        let mut resources = HashMap::new();
        let items = obj
            .children()
            .find(|c| c.has_tag_name("Resources"))
            .ok_or_else(|| format!("object {id}: no Resources"))?;
        for item in items.children().filter(|c| c.has_tag_name("Item")) {
            let rid = item
                .attribute("ID")
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| format!("object {id}: Item without a valid ID"))?;
            let ty = child_text(item, "Type").unwrap_or("");
            let data_type = DataType::parse(ty)
                .ok_or_else(|| format!("object {id} resource {rid}: unknown Type {ty:?}"))?;
            let r = Resource {
                id: rid,
                name: child_text(item, "Name").unwrap_or("").to_owned(),
                operations: child_text(item, "Operations").unwrap_or("").to_owned(),
                multiple: child_text(item, "MultipleInstances") == Some("Multiple"),
                mandatory: child_text(item, "Mandatory") == Some("Mandatory"),
                data_type,
            };
            resources.insert(rid, r);
        }
        out.push(Object {
            id,
            name,
            version,
            multiple,
            resources,
        });
    }
    if out.is_empty() {
        return Err("no Object element".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> ObjectDb {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/lwm2m_xml");
        ObjectDb::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_shipped_definition_parses_completely() {
        let db = shipped();
        for id in [0, 1, 2, 3, 4, 5, 6, 7, 19, 3303, 3304, 3311, 3336] {
            let o = db
                .object(id)
                .unwrap_or_else(|| panic!("object {id} missing"));
            assert!(!o.resources.is_empty(), "object {id}");
            for r in o.resources.values() {
                assert!(!r.name.is_empty(), "object {id} resource {}", r.id);
                // An executable has no type; everything else has one and an access mode.
                assert_eq!(
                    r.operations == "E",
                    r.data_type == DataType::None,
                    "{id}/{}",
                    r.id
                );
            }
        }
        assert_eq!(db.len(), 13);
        assert_eq!(db.resource_type(3, 13), Some(DataType::Time));
        assert_eq!(db.resource_type(3, 9), Some(DataType::Integer));
        assert_eq!(db.resource_type(3303, 5700), Some(DataType::Float));
        assert_eq!(db.resource_type(3311, 5850), Some(DataType::Boolean));
        assert_eq!(db.resource_type(5, 0), Some(DataType::Opaque));
        assert_eq!(db.resource_type(3, 22), Some(DataType::Objlnk));
        assert!(db.object(3).is_some_and(|o| !o.multiple));
        assert!(db.by_name("Firmware Update").is_some_and(|o| o.id == 5));
        let device = db.object(3).map(|o| o.resources.len());
        assert_eq!(device, Some(23));
    }

    #[test]
    fn builtin_matches_shipped_files() {
        let (a, b) = (ObjectDb::builtin(), shipped());
        assert_eq!(a.len(), b.len());
        for id in b.by_id.keys() {
            assert_eq!(a.object(*id), b.object(*id));
        }
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(parse_xml("<LWM2M></LWM2M>").is_err());
        assert!(parse_xml("<LWM2M><Object><Name>x</Name></Object></LWM2M>").is_err());
        assert!(parse_xml("not xml").is_err());
        let bad_type = "<LWM2M><Object><Name>x</Name><ObjectID>9</ObjectID><Resources>\
            <Item ID=\"1\"><Type>Quux</Type></Item></Resources></Object></LWM2M>";
        assert!(parse_xml(bad_type).is_err());
        let empty = std::env::temp_dir().join(format!("sy-lwm2m-empty-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&empty);
        assert!(matches!(
            ObjectDb::load_dir(&empty),
            Err(LoadError::Empty(_))
        ));
        let _ = std::fs::remove_dir(&empty);
    }
}
