//! The Prometheus text exposition format, version 0.0.4: one family per metric (`# HELP`,
//! `# TYPE`, then its samples, all together), label values escaped (`\` → `\\`, `"` → `\"`, a
//! line feed → `\n`; everything else is written as it is, UTF-8), help texts escaped the same
//! way less the quote. A family with no sample is left out: it says nothing, and some parsers
//! refuse a family without samples.

use std::fmt::Write as _;

/// The `Content-Type` of what [`Exposition::finish`] returns.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family being filled: its samples, each with its labels (`name`, value). Every
/// family here is a gauge: the values are read from the store's state as it is now.
#[derive(Debug)]
pub(crate) struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    pub(crate) fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    /// Adds a sample without labels.
    pub(crate) fn value(&mut self, v: f64) -> &mut Self {
        self.samples.push((Vec::new(), v));
        self
    }

    /// Adds a sample with these labels (label names are ours: `[a-z_]+`).
    pub(crate) fn sample(&mut self, labels: &[(&'static str, &str)], v: f64) -> &mut Self {
        self.samples.push((
            labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            v,
        ));
        self
    }
}

/// The text being written, family after family.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    pub(crate) fn new() -> Exposition {
        Exposition::default()
    }

    /// Writes a family (nothing when it has no sample).
    pub(crate) fn push(&mut self, f: Family) {
        if f.samples.is_empty() {
            return;
        }
        let o = &mut self.out;
        let _ = writeln!(o, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(o, "# TYPE {} gauge", f.name);
        for (labels, v) in &f.samples {
            o.push_str(f.name);
            if !labels.is_empty() {
                o.push('{');
                for (i, (k, val)) in labels.iter().enumerate() {
                    if i > 0 {
                        o.push(',');
                    }
                    o.push_str(k);
                    o.push_str("=\"");
                    escape_label_into(o, val);
                    o.push('"');
                }
                o.push('}');
            }
            o.push(' ');
            o.push_str(&number(*v));
            o.push('\n');
        }
    }

    /// The whole text.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// A label value as the format wants it: `\`, `"` and a line feed escaped.
#[cfg(test)]
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    escape_label_into(&mut s, v);
    s
}

fn escape_label_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A help text: `\` and a line feed escaped (quotes stay).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: whole numbers without a fraction (timestamps, counts), `NaN` and `±Inf` as
/// Go writes them.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("plain"), "plain");
    }

    #[test]
    fn families_without_samples_are_left_out() {
        let mut e = Exposition::new();
        e.push(Family::gauge("empty", "nothing"));
        let mut f = Family::gauge("one", "a \"quoted\"\nhelp");
        f.sample(&[("source", "s\"1")], 1.0).value(2.5);
        e.push(f);
        assert_eq!(
            e.finish(),
            "# HELP one a \"quoted\"\\nhelp\n# TYPE one gauge\none{source=\"s\\\"1\"} 1\none 2.5\n"
        );
    }

    #[test]
    fn numbers_are_written_as_prometheus_reads_them() {
        assert_eq!(number(1_733_600_000.0), "1733600000");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
