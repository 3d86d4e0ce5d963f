//! A subscription's own body (`spec.template`), for receivers that want their own shape (a Slack
//! incoming webhook, say): JSON text with `{{field}}` placeholders, each replaced by the field's
//! value escaped as a JSON string's content. Nothing else is evaluated, so a template cannot
//! reach anything but the message's own fields, and one that would not render JSON is refused
//! when the subscription is read.

use serde_json::Value;

use crate::quote::quote;

/// The fields a template may name, and where they are in a message's CloudEvent.
const FIELDS: [(&str, &[&str]); 12] = [
    ("id", &["id"]),
    ("type", &["type"]),
    ("subject", &["subject"]),
    ("time", &["time"]),
    ("namespace", &["data", "customData", "execwatch", "namespace"]),
    ("name", &["data", "customData", "execwatch", "name"]),
    ("pipeline", &["data", "customData", "execwatch", "pipeline"]),
    ("application", &["data", "customData", "execwatch", "application", "name"]),
    ("version", &["data", "customData", "execwatch", "application", "version"]),
    ("phase", &["data", "customData", "execwatch", "phase"]),
    ("environment", &["data", "customData", "execwatch", "environment"]),
    ("transition", &["transition"]),
];

/// Longest template accepted: it is stored with each message.
const LONGEST: usize = 8 << 10;

/// A checked template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    /// Checks a template: known fields only, and JSON once rendered.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > LONGEST {
            return Err(format!("template: {} bytes, more than {LONGEST}", text.len()));
        }
        let template = Template(text.to_owned());
        for name in placeholders(text) {
            if !FIELDS.iter().any(|(field, _)| *field == name) {
                let known: Vec<&str> = FIELDS.iter().map(|(f, _)| *f).collect();
                return Err(format!("template: placeholder {} is not a field ({})", quote(name), known.join(", ")));
            }
        }
        let sample = template.render(&Value::Null, "run/Succeeded");
        serde_json::from_str::<Value>(&sample).map_err(|e| format!("template: not JSON once rendered: {e}"))?;
        Ok(template)
    }

    /// The body for a message, from its CloudEvent and its transition.
    pub fn render(&self, event: &Value, transition: &str) -> String {
        let mut out = String::with_capacity(self.0.len() + 128);
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find("{{") {
            let Some(end) = rest[start..].find("}}") else { break };
            out.push_str(&rest[..start]);
            let name = rest[start + 2..start + end].trim();
            let value = match FIELDS.iter().find(|(field, _)| *field == name) {
                Some((_, ["transition"])) => transition.to_owned(),
                Some((_, path)) => path.iter().fold(event, |v, key| &v[*key]).as_str().unwrap_or_default().to_owned(),
                None => String::new(),
            };
            let escaped = serde_json::to_string(&value).unwrap_or_default();
            out.push_str(&escaped[1..escaped.len() - 1]);
            rest = &rest[start + end + 2..];
        }
        out.push_str(rest);
        out
    }
}

fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split("{{").skip(1).filter_map(|part| part.split_once("}}").map(|(name, _)| name.trim()))
}

#[cfg(test)]
mod tests {
    use super::Template;
    use serde_json::json;

    #[test]
    fn fields_are_escaped_into_json_and_unknown_ones_refused() {
        let slack = Template::parse(r#"{"text": "{{pipeline}} {{phase}} in {{environment}}: {{subject}}"}"#).unwrap();
        let event = json!({"subject": "team-a/run-1", "data": {"customData": {"execwatch": {
            "pipeline": "web \"quoted\"\n", "phase": "Succeeded", "environment": "prod"}}}});
        let body: serde_json::Value =
            serde_json::from_str(&slack.render(&event, "environment/prod/Succeeded")).unwrap();
        assert_eq!(body["text"], "web \"quoted\"\n Succeeded in prod: team-a/run-1");
        assert!(Template::parse(r#"{"text": "{{secret}}"}"#).unwrap_err().contains("is not a field"));
        assert!(Template::parse(r#"{"text": {{phase}}}"#).unwrap_err().contains("not JSON"));
    }
}
