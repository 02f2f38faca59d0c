//! Members and roles as SCIM resources: a member as a `User`, a role as a
//! `Group`; what a directory sends, read back into what the member should
//! be (`Desired`); PATCH applied to a resource's JSON (RFC 7644 §3.5.2);
//! `attributes` / `excludedAttributes` (§3.4.2.5).

use serde_json::{json, Map, Value};

use super::filter::{field, parse_path, strip_schema, PatchPath, GROUP_SCHEMA, USER_SCHEMA};
use super::protocol::ScimError;
use crate::domain::*;

pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Operations in one PATCH request, at most.
pub const PATCH_OPERATIONS_MAX: usize = 100;

/// The account's roles as groups: (id, display name).
pub const GROUPS: [(&str, &str); 4] = [
    ("administrators", "Administrators"),
    ("agents", "Agents"),
    ("sell-users", "Sell users"),
    ("sell-admins", "Sell admins"),
];

/// Whether `user` is in the role group `group`.
pub fn in_group(group: &str, user: &User) -> bool {
    match group {
        "administrators" => user.support_role == SupportRole::Admin,
        // Everyone who holds an agent seat's role: agents and admins (R09).
        "agents" => user.support_role.holds_seat(),
        // Everyone with Sell: users and admins (R22).
        "sell-users" => user.sell_role != SellRole::None,
        "sell-admins" => user.sell_role == SellRole::Admin,
        _ => false,
    }
}

fn stamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn user_json(user: &User, base: &str) -> Value {
    let emails: Vec<Value> = user
        .emails
        .iter()
        .map(|e| json!({"value": e.address, "primary": e.primary}))
        .collect();
    let groups: Vec<Value> = GROUPS
        .iter()
        .filter(|(id, _)| in_group(id, user))
        .map(|(id, name)| json!({"value": id, "display": name, "$ref": format!("{base}/Groups/{id}")}))
        .collect();
    let mut out = json!({
        "schemas": [USER_SCHEMA],
        "id": user.id,
        // Members added in the console go by their address.
        "userName": user.user_name.as_deref().unwrap_or(user.primary_address()),
        "name": {"formatted": user.name},
        "displayName": user.name,
        "active": user.is_active(),
        "emails": emails,
        "groups": groups,
        "meta": {
            "resourceType": "User",
            "created": stamp(user.created_at),
            "lastModified": stamp(user.modified_at()),
            "location": format!("{base}/Users/{}", user.id),
        },
    });
    if let (Some(id), Some(o)) = (&user.external_id, out.as_object_mut()) {
        o.insert("externalId".into(), json!(id));
    }
    out
}

pub fn group_json(id: &str, name: &str, members: &[(String, String)], base: &str) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|(uid, display)| json!({"value": uid, "display": display, "$ref": format!("{base}/Users/{uid}")}))
        .collect();
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": id,
        "displayName": name,
        "members": members,
        "meta": {
            "resourceType": "Group",
            "location": format!("{base}/Groups/{id}"),
        },
    })
}

/// Keeps the attributes asked for (`attributes`) or drops those not
/// wanted (`excludedAttributes`); `id` and `schemas` are always returned
/// (RFC 7643 §7 `returned: always`).
pub fn project(resource: Value, attributes: &[String], excluded: &[String]) -> Value {
    let Value::Object(fields) = resource else {
        return resource;
    };
    let wanted = |name: &str, sub: Option<&str>, list: &[String]| {
        list.iter().any(|a| {
            let a = strip_schema(a);
            let full = match sub {
                Some(s) => format!("{}.{}", name.to_ascii_lowercase(), s.to_ascii_lowercase()),
                None => name.to_ascii_lowercase(),
            };
            a == full || (sub.is_none() && a.starts_with(&format!("{full}.")))
        })
    };
    let always = |k: &str| k == "id" || k == "schemas";
    let mut out = Map::new();
    for (k, v) in fields {
        if always(&k) {
            out.insert(k, v);
            continue;
        }
        if !attributes.is_empty() {
            if !wanted(&k, None, attributes) {
                continue;
            }
            // Only the sub-attributes named, if some are.
            let subs: Vec<String> = attributes
                .iter()
                .map(|a| strip_schema(a))
                .filter_map(|a| {
                    a.strip_prefix(&format!("{}.", k.to_ascii_lowercase()))
                        .map(str::to_string)
                })
                .collect();
            out.insert(k, keep_subs(v, &subs));
            continue;
        }
        if wanted(&k, None, excluded)
            && excluded
                .iter()
                .any(|a| strip_schema(a) == k.to_ascii_lowercase())
        {
            continue;
        }
        out.insert(k, v);
    }
    Value::Object(out)
}

fn keep_subs(value: Value, subs: &[String]) -> Value {
    if subs.is_empty() {
        return value;
    }
    let keep = |o: Map<String, Value>| {
        Value::Object(
            o.into_iter()
                .filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k)))
                .collect(),
        )
    };
    match value {
        Value::Object(o) => keep(o),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| match i {
                    Value::Object(o) => keep(o),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

/// What a member should be, as a directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The directory's login name for them.
    pub user_name: String,
    pub name: String,
    /// The sign-in address: the `primary` entry of `emails`, else the
    /// first, else `userName` if it is an address.
    pub primary: String,
    /// Every address the profile should have, the primary one first.
    pub emails: Vec<String>,
    pub active: bool,
    pub external_id: Option<String>,
}

fn text<'a>(resource: &'a Value, name: &str) -> Result<Option<&'a str>, ScimError> {
    match field(resource, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

/// A boolean, or the text "True"/"False" some directories send (Entra ID).
fn boolean(value: &Value, name: &str) -> Result<bool, ScimError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!(
            "{name} must be true or false"
        ))),
    }
}

impl Desired {
    /// Reads a User resource a directory sent (POST, PUT, or the result of
    /// a PATCH). Attributes admind does not keep are ignored (RFC 7644
    /// §3.3); read-only ones (`id`, `meta`, `groups`) too.
    pub fn from_resource(resource: &Value) -> Result<Desired, ScimError> {
        if !resource.is_object() {
            return Err(ScimError::invalid_syntax("the body must be a JSON object"));
        }
        let user_name = text(resource, "userName")?
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ScimError::invalid_value("userName is required: the member's sign-in address")
            })?
            .to_string();
        let name_object = field(resource, "name");
        let from_name = |sub: &str| -> Result<Option<String>, ScimError> {
            match name_object {
                Some(n @ Value::Object(_)) => Ok(text(n, sub)?.map(str::to_string)),
                None | Some(Value::Null) => Ok(None),
                Some(_) => Err(ScimError::invalid_value("name must be an object")),
            }
        };
        let given = [from_name("givenName")?, from_name("familyName")?]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let name = [
            text(resource, "displayName")?.map(str::to_string),
            from_name("formatted")?,
            (!given.is_empty()).then_some(given),
        ]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| user_name.clone());
        let mut emails: Vec<String> = vec![];
        let mut primary: Option<String> = None;
        match field(resource, "emails") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let value = text(item, "value")?
                        .ok_or_else(|| {
                            ScimError::invalid_value("every entry of emails needs a value")
                        })?
                        .trim();
                    let is_primary = match field(item, "primary") {
                        None | Some(Value::Null) => false,
                        Some(v) => boolean(v, "primary")?,
                    };
                    if is_primary {
                        if primary.is_some() {
                            return Err(ScimError::invalid_value(
                                "only one address can be primary",
                            ));
                        }
                        primary = Some(value.to_string());
                    }
                    if !emails
                        .iter()
                        .any(|e| normalize_email(e) == normalize_email(value))
                    {
                        emails.push(value.to_string());
                    }
                }
            }
            Some(_) => return Err(ScimError::invalid_value("emails must be a list")),
        }
        let primary = primary
            .or_else(|| emails.first().cloned())
            .or_else(|| user_name.contains('@').then(|| user_name.clone()))
            .ok_or_else(|| {
                ScimError::invalid_value(
                    "a member needs an email address: send emails, or a userName that is one",
                )
            })?;
        // The primary address first.
        emails.retain(|e| normalize_email(e) != normalize_email(&primary));
        emails.insert(0, primary.clone());
        let active = match field(resource, "active") {
            None | Some(Value::Null) => true,
            Some(v) => boolean(v, "active")?,
        };
        let external_id = text(resource, "externalId")?
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(Desired {
            user_name,
            name,
            primary,
            emails,
            active,
            external_id,
        })
    }
}

/// The operation of one PATCH entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchOp {
    Add,
    Remove,
    Replace,
}

/// Applies the operations of a PATCH request body to `resource`, as JSON;
/// the caller then reads the result (`Desired`, or a group's members) and
/// makes the changes through the commands. Read-only attributes cannot be
/// patched (`mutability`); paths outside the schema are `invalidPath`.
pub fn apply_patch(resource: &mut Value, body: &Value, writable: &[&str]) -> Result<(), ScimError> {
    let schemas = field(body, "schemas").and_then(Value::as_array);
    if !schemas.is_some_and(|s| s.iter().any(|v| v.as_str() == Some(PATCH_SCHEMA))) {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH body names the schema {PATCH_SCHEMA}"
        )));
    }
    let operations = field(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body has a list of Operations"))?;
    if operations.is_empty() || operations.len() > PATCH_OPERATIONS_MAX {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH request has 1 to {PATCH_OPERATIONS_MAX} operations"
        )));
    }
    for operation in operations {
        let op = match text(operation, "op")?
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => PatchOp::Add,
            Some("remove") => PatchOp::Remove,
            Some("replace") => PatchOp::Replace,
            _ => {
                return Err(ScimError::invalid_syntax(
                    "op must be add, remove or replace",
                ))
            }
        };
        let value = field(operation, "value").cloned();
        match text(operation, "path")? {
            None => {
                if op == PatchOp::Remove {
                    return Err(ScimError::new(400, Some("noTarget"), "remove needs a path"));
                }
                let Some(Value::Object(fields)) = value else {
                    return Err(ScimError::invalid_value(
                        "without a path, value is an object of attributes",
                    ));
                };
                for (name, v) in fields {
                    // Attributes of schemas admind does not keep (an
                    // enterprise extension) are ignored, as on PUT.
                    if name
                        .to_ascii_lowercase()
                        .starts_with("urn:ietf:params:scim:schemas:extension:")
                    {
                        continue;
                    }
                    let path = parse_path(&name)
                        .map_err(|e| ScimError::invalid_path(format!("{name}: {e}")))?;
                    apply_one(resource, op, &path, Some(v), writable)?;
                }
            }
            Some(path_text) => {
                if path_text
                    .to_ascii_lowercase()
                    .starts_with("urn:ietf:params:scim:schemas:extension:")
                {
                    continue;
                }
                let path = parse_path(path_text)
                    .map_err(|e| ScimError::invalid_path(format!("{path_text}: {e}")))?;
                if op != PatchOp::Remove && value.is_none() {
                    return Err(ScimError::invalid_value("add and replace need a value"));
                }
                apply_one(resource, op, &path, value, writable)?;
            }
        }
    }
    Ok(())
}

fn key_of(object: &Map<String, Value>, name: &str) -> String {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn apply_one(
    resource: &mut Value,
    op: PatchOp,
    path: &PatchPath,
    value: Option<Value>,
    writable: &[&str],
) -> Result<(), ScimError> {
    if !writable.contains(&path.attr.as_str()) {
        return Err(
            if matches!(path.attr.as_str(), "id" | "meta" | "groups" | "schemas") {
                ScimError::new(
                    400,
                    Some("mutability"),
                    format!("{} is read-only", path.attr),
                )
            } else {
                ScimError::invalid_path(format!("no attribute {} here", path.attr))
            },
        );
    }
    let Value::Object(object) = resource else {
        return Err(ScimError::invalid_syntax("the resource is not an object"));
    };
    let key = key_of(object, &path.attr);
    match (&path.filter, &path.sub) {
        (None, None) => match op {
            // Entra ID removes group members by value, without a filter:
            // only those named go.
            PatchOp::Remove if matches!(value, Some(Value::Array(_))) => {
                let Some(Value::Array(gone)) = value else {
                    return Ok(());
                };
                let named = |item: &Value| {
                    gone.iter().any(|g| {
                        field(g, "value").is_some() && field(g, "value") == field(item, "value")
                    })
                };
                if let Some(Value::Array(items)) = object.get_mut(&key) {
                    items.retain(|item| !named(item));
                }
            }
            PatchOp::Remove => {
                object.remove(&key);
            }
            PatchOp::Replace => {
                object.insert(key, value.unwrap_or(Value::Null));
            }
            PatchOp::Add => {
                let value = value.unwrap_or(Value::Null);
                match (object.get_mut(&key), value) {
                    (Some(Value::Array(items)), Value::Array(new)) => items.extend(new),
                    (Some(Value::Array(items)), single) => items.push(single),
                    (Some(Value::Object(existing)), Value::Object(new)) => {
                        for (k, v) in new {
                            let k = key_of(existing, &k);
                            existing.insert(k, v);
                        }
                    }
                    (_, v) => {
                        object.insert(key, v);
                    }
                }
            }
        },
        (None, Some(sub)) => {
            let target = object.entry(key).or_insert_with(|| json!({}));
            match target {
                Value::Object(inner) => {
                    let k = key_of(inner, sub);
                    match op {
                        PatchOp::Remove => {
                            inner.remove(&k);
                        }
                        _ => {
                            inner.insert(k, value.unwrap_or(Value::Null));
                        }
                    }
                }
                // `emails.value` on a list: every element.
                Value::Array(items) => {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        let k = key_of(item, sub);
                        match op {
                            PatchOp::Remove => {
                                item.remove(&k);
                            }
                            _ => {
                                item.insert(k, value.clone().unwrap_or(Value::Null));
                            }
                        }
                    }
                }
                _ => {
                    return Err(ScimError::invalid_path(format!(
                        "{} has no sub-attributes",
                        path.attr
                    )))
                }
            }
        }
        (Some(filter), sub) => {
            let Some(Value::Array(items)) = object.get_mut(&key) else {
                return Err(ScimError::new(
                    400,
                    Some("noTarget"),
                    format!("no {} matches the filter", path.attr),
                ));
            };
            let matching: Vec<usize> = (0..items.len())
                .filter(|i| filter.matches(&items[*i]))
                .collect();
            if matching.is_empty() {
                if op == PatchOp::Remove {
                    return Err(ScimError::new(
                        400,
                        Some("noTarget"),
                        format!("no {} matches the filter", path.attr),
                    ));
                }
                // Add or replace with nothing matching adds one (Entra ID
                // sends `emails[type eq "work"].value` for a new address).
                let mut element = Map::new();
                match sub {
                    Some(s) => {
                        element.insert(s.clone(), value.unwrap_or(Value::Null));
                    }
                    None => {
                        if let Some(Value::Object(o)) = value {
                            element = o;
                        }
                    }
                }
                items.push(Value::Object(element));
                return Ok(());
            }
            match (op, sub) {
                (PatchOp::Remove, None) => {
                    for i in matching.into_iter().rev() {
                        items.remove(i);
                    }
                }
                (PatchOp::Remove, Some(s)) => {
                    for i in matching {
                        if let Some(o) = items[i].as_object_mut() {
                            let k = key_of(o, s);
                            o.remove(&k);
                        }
                    }
                }
                (_, Some(s)) => {
                    for i in matching {
                        if let Some(o) = items[i].as_object_mut() {
                            let k = key_of(o, s);
                            o.insert(k, value.clone().unwrap_or(Value::Null));
                        }
                    }
                }
                (_, None) => {
                    for i in matching {
                        match (&mut items[i], value.clone()) {
                            (Value::Object(o), Some(Value::Object(new))) => {
                                for (k, v) in new {
                                    let k = key_of(o, &k);
                                    o.insert(k, v);
                                }
                            }
                            (slot, Some(v)) => *slot = v,
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_WRITABLE: &[&str] = &[
        "username",
        "name",
        "displayname",
        "active",
        "emails",
        "externalid",
    ];

    fn patch(resource: &mut Value, ops: Value) -> Result<(), ScimError> {
        apply_patch(
            resource,
            &json!({"schemas": [PATCH_SCHEMA], "Operations": ops}),
            USER_WRITABLE,
        )
    }

    fn resource() -> Value {
        json!({"userName": "a@x.test", "name": {"formatted": "A"}, "active": true,
               "emails": [{"value": "a@x.test", "primary": true}]})
    }

    #[test]
    fn the_patches_directories_send_apply() {
        // Okta: replace without a path.
        let mut r = resource();
        patch(
            &mut r,
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .unwrap();
        assert!(!Desired::from_resource(&r).unwrap().active);
        // Entra ID: capitalised op, "False" as text, a filtered path.
        let mut r = resource();
        patch(
            &mut r,
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "w@x.test"},
                {"op": "replace", "path": "name.givenName", "value": "Ann"},
                {"op": "replace", "path": "displayName", "value": "Ann Lee"},
            ]),
        )
        .unwrap();
        let d = Desired::from_resource(&r).unwrap();
        assert!(!d.active);
        assert_eq!(d.emails, vec!["a@x.test", "w@x.test"]);
        assert_eq!(d.primary, "a@x.test");
        assert_eq!(d.name, "Ann Lee");
        // Remove by a value filter.
        patch(
            &mut r,
            json!([{"op": "remove", "path": "emails[value eq \"w@x.test\"]"}]),
        )
        .unwrap();
        assert_eq!(Desired::from_resource(&r).unwrap().emails, vec!["a@x.test"]);
    }

    #[test]
    fn bad_patches_are_errors_that_name_their_kind() {
        let mut r = resource();
        let kind = |r: &mut Value, ops: Value| patch(r, ops).unwrap_err().scim_type;
        assert_eq!(
            kind(&mut r, json!([{"op": "move", "path": "active"}])),
            Some("invalidSyntax")
        );
        assert_eq!(
            kind(
                &mut r,
                json!([{"op": "replace", "path": "id", "value": "x"}])
            ),
            Some("mutability")
        );
        assert_eq!(
            kind(
                &mut r,
                json!([{"op": "replace", "path": "nickName", "value": "x"}])
            ),
            Some("invalidPath")
        );
        assert_eq!(
            kind(
                &mut r,
                json!([{"op": "remove", "path": "emails[value eq \"none@x\"]"}])
            ),
            Some("noTarget")
        );
        assert_eq!(
            kind(
                &mut r,
                json!([{"op": "replace", "path": "emails[value eq"}])
            ),
            Some("invalidPath")
        );
        let many: Vec<Value> = (0..=PATCH_OPERATIONS_MAX)
            .map(|_| json!({"op": "replace", "path": "active", "value": true}))
            .collect();
        assert_eq!(kind(&mut r, Value::Array(many)), Some("invalidSyntax"));
        assert_eq!(
            r,
            resource(),
            "each of these failed before changing anything"
        );
    }

    #[test]
    fn attributes_and_excluded_attributes_select() {
        let r = json!({"schemas": [], "id": "1", "userName": "a", "name": {"formatted": "A", "x": 1}, "emails": [{"value": "a", "primary": true}]});
        let only = project(r.clone(), &["userName".into(), "emails.value".into()], &[]);
        assert_eq!(
            only,
            json!({"schemas": [], "id": "1", "userName": "a", "emails": [{"value": "a"}]})
        );
        let without = project(
            r,
            &[],
            &[
                "name".into(),
                "urn:ietf:params:scim:schemas:core:2.0:User:emails".into(),
            ],
        );
        assert_eq!(without, json!({"schemas": [], "id": "1", "userName": "a"}));
    }
}
