//! The handlebars templates under `compose/`, `traefik/` and `prometheus/`, embedded in the
//! binary, and the registries that render them: HTML escaping off, strict mode on (a missing
//! variable is an error), and one helper, `{{yaml value}}`, through which every interpolated
//! value passes. Each registry gives `yaml` the [`Flavour`] its files need.

use std::sync::OnceLock;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError, RenderErrorReason,
};
use serde::Serialize;

use super::scalar::{quote, Flavour};
use crate::error::{Error, Result};

/// `(name, source)` of every template, by the registry that renders it.
const COMPOSE: &[(&str, &str)] = &[
    ("database", include_str!("../../compose/database.yml.hbs")),
    ("monitoring", include_str!("../../compose/monitoring.yml.hbs")),
    ("alertmanager", include_str!("../../compose/alertmanager.yml.hbs")),
    ("node-exporter", include_str!("../../compose/node-exporter.yml.hbs")),
    ("rocketchat", include_str!("../../compose/rocketchat.yml.hbs")),
    ("service", include_str!("../../compose/service.yml.hbs")),
    ("traefik", include_str!("../../compose/traefik.yml.hbs")),
];
const PLAIN: &[(&str, &str)] = &[
    ("replica-set", include_str!("../../compose/replica-set.js.hbs")),
    ("nats-conf", include_str!("../../compose/nats.conf.hbs")),
    ("mongodb-probe", include_str!("../../compose/mongodb-probe.js.hbs")),
    ("alertmanager-config", include_str!("../../prometheus/alertmanager.yml.hbs")),
    ("blackbox", include_str!("../../prometheus/blackbox.yml.hbs")),
    ("file-sd-nodes", include_str!("../../prometheus/file-sd-nodes.yml.hbs")),
    ("traefik-static", include_str!("../../traefik/static.yml.hbs")),
    ("prometheus", include_str!("../../prometheus/prometheus.yml.hbs")),
    ("file-sd", include_str!("../../prometheus/file-sd.yml.hbs")),
    ("file-sd-services", include_str!("../../prometheus/file-sd-services.yml.hbs")),
    ("prometheus-alerts", include_str!("../../prometheus/alerts.yml.hbs")),
];
const GRAFANA: &[(&str, &str)] = &[
    ("grafana-datasource", include_str!("../../prometheus/grafana-datasource.yml.hbs")),
    ("grafana-dashboards", include_str!("../../prometheus/grafana-dashboards.yml.hbs")),
];
const TRAEFIK_DYNAMIC: &[(&str, &str)] = &[
    ("traefik-rocketchat", include_str!("../../traefik/rocketchat.yml.hbs")),
    ("traefik-grafana", include_str!("../../traefik/grafana.yml.hbs")),
    ("traefik-tls", include_str!("../../traefik/tls.yml.hbs")),
];

/// Our own Grafana dashboard: static JSON, not a template (its legends use `{{label}}`).
pub const GRAFANA_DASHBOARD: &str = include_str!("../../prometheus/grafana-dashboard.json");

/// The `yaml` helper: one parameter, a string, number or boolean; strings are quoted for the
/// registry's flavour, numbers and booleans written as they are.
struct YamlScalar(Flavour);

impl HelperDef for YamlScalar {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        if helper.params().len() != 1 {
            return Err(RenderErrorReason::Other("`yaml` takes exactly one value".into()).into());
        }
        let param = helper.param(0).ok_or(RenderErrorReason::ParamNotFoundForIndex("yaml", 0))?;
        if param.is_value_missing() {
            return Err(RenderErrorReason::MissingVariable(param.relative_path().cloned()).into());
        }
        let text = match param.value() {
            serde_json::Value::String(text) => quote(text, self.0),
            serde_json::Value::Number(number) => number.to_string(),
            serde_json::Value::Bool(flag) => flag.to_string(),
            other => {
                return Err(RenderErrorReason::Other(format!(
                    "`yaml` takes a string, number or boolean, not {other} ({:?})",
                    param.relative_path()
                ))
                .into())
            }
        };
        out.write(&text)?;
        Ok(())
    }
}

/// A registry with our settings and `yaml` of `flavour`, holding `templates`.
pub(crate) fn registry(flavour: Flavour, templates: &[(&str, &str)]) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.register_escape_fn(handlebars::no_escape);
    registry.set_strict_mode(true);
    registry.register_helper("yaml", Box::new(YamlScalar(flavour)));
    for (name, source) in templates {
        registry
            .register_template_string(name, source)
            .unwrap_or_else(|e| panic!("embedded template {name} does not parse: {e}"));
    }
    registry
}

struct Registries {
    compose: Handlebars<'static>,
    plain: Handlebars<'static>,
    grafana: Handlebars<'static>,
    traefik_dynamic: Handlebars<'static>,
}

fn registries() -> &'static Registries {
    static REGISTRIES: OnceLock<Registries> = OnceLock::new();
    REGISTRIES.get_or_init(|| Registries {
        compose: registry(Flavour::Dollar, COMPOSE),
        plain: registry(Flavour::Plain, PLAIN),
        grafana: registry(Flavour::Dollar, GRAFANA),
        traefik_dynamic: registry(Flavour::GoTemplate, TRAEFIK_DYNAMIC),
    })
}

/// Renders the embedded template `name` (from whichever registry holds it) with `data`.
pub fn render(name: &str, data: &impl Serialize) -> Result<String> {
    let all = registries();
    let registry = [&all.compose, &all.plain, &all.grafana, &all.traefik_dynamic]
        .into_iter()
        .find(|registry| registry.has_template(name))
        .unwrap_or_else(|| panic!("no embedded template {name}"));
    registry.render(name, data).map_err(|e| template_error(name, e))
}

fn template_error(name: &str, error: RenderError) -> Error {
    Error::failed(format!("rendering template {name} failed (a bug in rcfleet, please report it): {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_missing_variable_is_an_error_not_an_empty_string() {
        let registry = registry(Flavour::Plain, &[("t", "a: {{yaml missing}}\nb: {{plain}}\n")]);
        assert!(registry.render("t", &json!({"plain": "x"})).is_err());
        assert!(registry.render("t", &json!({"missing": "x"})).is_err());
        assert_eq!(registry.render("t", &json!({"missing": "x", "plain": "y"})).unwrap(), "a: \"x\"\nb: y\n");
    }

    #[test]
    fn a_missing_field_in_a_loop_is_an_error() {
        let registry = registry(Flavour::Plain, &[("t", "{{#each items}}- {{yaml this.name}}\n{{/each}}")]);
        assert!(registry.render("t", &json!({"items": [{"name": "a"}, {"nom": "b"}]})).is_err());
    }

    #[test]
    fn yaml_refuses_null_lists_and_maps() {
        let registry = registry(Flavour::Plain, &[("t", "{{yaml v}}")]);
        for v in [json!(null), json!([1]), json!({"a": 1})] {
            assert!(registry.render("t", &json!({ "v": v })).is_err(), "{v}");
        }
        assert_eq!(registry.render("t", &json!({"v": 3000})).unwrap(), "3000");
        assert_eq!(registry.render("t", &json!({"v": true})).unwrap(), "true");
    }

    #[test]
    fn html_escaping_is_off_and_flavours_differ() {
        let value = json!({"v": "a&b<c>`d` $X {{y}}"});
        let plain = registry(Flavour::Plain, &[("t", "{{yaml v}}")]).render("t", &value).unwrap();
        assert_eq!(plain, "\"a&b<c>`d` $X {{y}}\"");
        let compose = registry(Flavour::Dollar, &[("t", "{{yaml v}}")]).render("t", &value).unwrap();
        assert_eq!(compose, "\"a&b<c>`d` $$X {{y}}\"");
        let traefik = registry(Flavour::GoTemplate, &[("t", "{{yaml v}}")]).render("t", &value).unwrap();
        assert_eq!(traefik, "\"a&b<c>`d` $X \\u007B\\u007By}}\"");
    }

    #[test]
    fn every_embedded_template_parses() {
        let _ = registries();
    }
}
