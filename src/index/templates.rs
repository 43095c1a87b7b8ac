//! Page templates: embedded in the binary with `include_str!`, each
//! overridable by a file of the same name in a directory the operator names
//! (`[mirror] templates`, `--templates`). Templates only ever receive typed
//! view structs; tera escapes every value (autoescape is on for `.html`).

use std::path::Path;

use serde::Serialize;
use tera::Tera;

pub const BUILTIN: &[(&str, &str)] = &[
    // The one stylesheet every human page includes (first: the pages include it).
    ("style.css", include_str!("../../templates/style.css")),
    ("simple_root.html", include_str!("../../templates/simple_root.html")),
    ("simple_project.html", include_str!("../../templates/simple_project.html")),
    ("landing.html", include_str!("../../templates/landing.html")),
    ("security.html", include_str!("../../templates/security.html")),
    ("project.html", include_str!("../../templates/project.html")),
    ("projects.html", include_str!("../../templates/projects.html")),
];

/// Raw assets (not templates), overridable the same way.
pub const ASSETS: &[(&str, &str)] = &[
    ("security.js", include_str!("../../templates/security.js")),
    ("projects.js", include_str!("../../templates/projects.js")),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("template {name}: {message}")]
    Tera { name: String, message: String },
}

fn chain(e: &tera::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

pub struct Templates {
    tera: Tera,
    overrides: Option<std::path::PathBuf>,
    /// The templates replaced by a file in `overrides`.
    overridden: Vec<&'static str>,
    /// Hash of every template and asset in force: part of a tree's input key.
    digest: String,
}

impl Templates {
    /// The built-in templates, with any same-named file in `overrides` instead.
    pub fn new(overrides: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut tera = Tera::new();
        tera.autoescape_on(vec![".html"]);
        let mut all = String::new();
        for (name, builtin) in BUILTIN.iter().chain(ASSETS.iter()) {
            let custom = overrides.map(|dir| dir.join(name)).filter(|p| p.is_file());
            let text = match &custom {
                Some(p) => fs_err::read_to_string(p)?,
                None => (*builtin).to_string(),
            };
            all.push_str(name);
            all.push('\0');
            all.push_str(&text);
            all.push('\0');
        }
        let mut overridden = Vec::new();
        for (name, builtin) in BUILTIN {
            let custom = overrides.map(|dir| dir.join(name)).filter(|p| p.is_file());
            if custom.is_some() {
                overridden.push(*name);
            }
            let text = match &custom {
                Some(p) => fs_err::read_to_string(p)?,
                None => (*builtin).to_string(),
            };
            let shown = custom.as_ref().map_or_else(|| (*name).to_string(), |p| p.display().to_string());
            tera.add_raw_template(name, &text).map_err(|e| TemplateError::Tera { name: shown, message: chain(&e) })?;
        }
        Ok(Templates {
            tera,
            overrides: overrides.map(Path::to_path_buf),
            overridden,
            digest: crate::util::hashing::Sha256::of(all.as_bytes()).hex(),
        })
    }

    /// Whether `name` is the built-in template (no override replaces it).
    pub fn is_builtin(&self, name: &str) -> bool {
        !self.overridden.contains(&name)
    }

    /// The built-in stylesheet, when no override replaces it (the pages
    /// written without tera include it).
    pub fn builtin_style(&self) -> Option<&'static str> {
        let name = "style.css";
        self.is_builtin(name).then(|| BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)).flatten()
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// A raw asset: the override if there is one, else the built-in.
    pub fn asset(&self, name: &str) -> Result<String, TemplateError> {
        if let Some(p) = self.overrides.as_ref().map(|d| d.join(name)).filter(|p| p.is_file()) {
            return Ok(fs_err::read_to_string(p)?);
        }
        let builtin = ASSETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        builtin
            .map(str::to_string)
            .ok_or_else(|| TemplateError::Tera { name: name.to_string(), message: "no such asset".into() })
    }

    pub fn render<T: Serialize>(&self, name: &str, view: &T) -> Result<String, TemplateError> {
        let ctx = tera::Context::from_serialize(view)
            .map_err(|e| TemplateError::Tera { name: name.to_string(), message: chain(&e) })?;
        self.tera.render(name, &ctx).map_err(|e| TemplateError::Tera { name: name.to_string(), message: chain(&e) })
    }
}
