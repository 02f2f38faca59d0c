//! What the SCIM endpoint says it supports (RFC 7643 §5–7): exactly what
//! the handlers do. A member is a `User` whose name, sign-in addresses and
//! active state admind needs (so they are required); a role is a `Group`
//! whose members may change but which is never created, renamed or deleted.

use serde_json::{json, Value};

use super::filter::{GROUP_SCHEMA, USER_SCHEMA};
use super::protocol::PAGE_COUNT_MAX;

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": PAGE_COUNT_MAX},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Directory token",
            "description": "A bearer token an admin of the account creates in the Admin Center (Directory provisioning) or with POST /v1/accounts/{id}/scim/tokens.",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

pub fn resource_types(base: &str) -> Vec<Value> {
    let one = |id: &str, endpoint: &str, schema: &str, description: &str| {
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": id,
            "name": id,
            "endpoint": endpoint,
            "description": description,
            "schema": schema,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{id}")},
        })
    };
    vec![
        one("User", "/Users", USER_SCHEMA, "A member of the account"),
        one(
            "Group",
            "/Groups",
            GROUP_SCHEMA,
            "A role of the account: Administrators, Agents, Sell users, Sell admins",
        ),
    ]
}

fn attribute(name: &str, kind: &str, required: bool, mutability: &str, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": required,
        "caseExact": false,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": "none",
    })
}

fn with(mut attribute: Value, key: &str, value: Value) -> Value {
    if let Some(o) = attribute.as_object_mut() {
        o.insert(key.into(), value);
    }
    attribute
}

pub fn schemas(base: &str) -> Vec<Value> {
    let user_attributes = vec![
        with(
            attribute("userName", "string", true, "readWrite", "The directory's login name for the person; unique in the account."),
            "uniqueness",
            json!("server"),
        ),
        attribute("displayName", "string", true, "readWrite", "The member's name, as the Admin Center shows it."),
        with(
            attribute("name", "complex", false, "readOnly", "The member's name (displayName; givenName and familyName are read from a request when displayName is missing)."),
            "subAttributes",
            json!([attribute("formatted", "string", false, "readOnly", "The member's name.")]),
        ),
        attribute("active", "boolean", true, "readWrite", "False deactivates the member: sessions end, seats are freed, sign-in is refused; the profile is kept."),
        with(
            with(
                attribute("emails", "complex", true, "readWrite", "The member's addresses. The primary one is the sign-in address: a new one becomes primary only once verified through the link mailed to it."),
                "multiValued",
                json!(true),
            ),
            "subAttributes",
            json!([
                attribute("value", "string", true, "readWrite", "An email address."),
                attribute("primary", "boolean", false, "readWrite", "The sign-in address."),
            ]),
        ),
        with(
            with(
                attribute("groups", "complex", false, "readOnly", "The roles the member holds; change them through /Groups."),
                "multiValued",
                json!(true),
            ),
            "subAttributes",
            json!([
                attribute("value", "string", false, "readOnly", "The group's id."),
                with(attribute("$ref", "reference", false, "readOnly", "The group's URI."), "referenceTypes", json!(["Group"])),
                attribute("display", "string", false, "readOnly", "The group's name."),
            ]),
        ),
    ];
    let group_attributes = vec![
        attribute("displayName", "string", true, "readOnly", "The role's name."),
        with(
            with(
                attribute("members", "complex", false, "readWrite", "The members holding the role; adding and removing them changes their roles under the account's rules."),
                "multiValued",
                json!(true),
            ),
            "subAttributes",
            json!([
                attribute("value", "string", false, "immutable", "The member's id."),
                with(attribute("$ref", "reference", false, "immutable", "The member's URI."), "referenceTypes", json!(["User"])),
                attribute("display", "string", false, "readOnly", "The member's name."),
            ]),
        ),
    ];
    let schema = |id: &str, name: &str, description: &str, attributes: Vec<Value>| {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": id,
            "name": name,
            "description": description,
            "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
        })
    };
    vec![
        schema(
            USER_SCHEMA,
            "User",
            "A member of the account",
            user_attributes,
        ),
        schema(
            GROUP_SCHEMA,
            "Group",
            "A role of the account",
            group_attributes,
        ),
    ]
}
