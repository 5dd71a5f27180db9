//! Running one GraphQL request under the limits, with an `extensions.code` on every error.
//!
//! Two schemas share the resolvers and differ in their depth limit. Data queries keep
//! `graphql.max_depth` (12 by default). An operation that selects nothing but
//! introspection (`__schema`, `__type`, `__typename`) runs under
//! [`INTROSPECTION_MAX_DEPTH`] instead: the introspection queries of graphql-js,
//! graphql-core, GraphiQL and Apollo's tools reach depth 15 (their `TypeRef` fragment
//! nests `ofType` nine times under `fields { args { type`), and a depth limit that
//! refused them kept every standard client from reading the schema. Introspection is
//! bounded by the schema's own size, and by the complexity limit, which both keep.
//!
//! Aliases are capped per document ([`GraphqlSettings::max_aliases`]): one field asked
//! a thousand times under a thousand names multiplies the work of one request.

use super::SunsetSchema;
use crate::config::GraphqlSettings;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, Request, Response, ServerError, Value};

/// Depth allowed to operations that only introspect.
pub const INTROSPECTION_MAX_DEPTH: usize = 20;

/// The codes of errors raised before any resolver ran.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
pub const TOO_DEEP: &str = "QUERY_TOO_DEEP";
pub const TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

/// The schema for data and the one for introspection.
#[derive(Clone)]
pub struct Schemas {
    pub data: SunsetSchema,
    pub introspection: SunsetSchema,
    pub max_aliases: usize,
}

/// What kind of answer a response is, for the HTTP status of
/// `application/graphql-response+json` (GraphQL over HTTP): a request refused before
/// execution has no `data` at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Executed (maybe with field errors).
    Executed,
    /// Refused before execution: not parsed, not valid, or over a limit.
    Refused,
}

impl Schemas {
    /// Runs `request`, refusing documents with too many aliases, and gives every error
    /// an `extensions.code`.
    pub async fn execute(&self, request: Request) -> (Response, Outcome) {
        let (response, outcome, _) = self.execute_labelled(request).await;
        (response, outcome)
    }

    /// [`Schemas::execute`], also naming the operation for metrics (see
    /// [`operation_label`]) from the document it parsed anyway; `None` when refused.
    pub async fn execute_labelled(&self, request: Request) -> (Response, Outcome, Option<Label>) {
        let document = match async_graphql::parser::parse_query(&request.query) {
            Ok(document) => document,
            Err(e) => {
                let error = ServerError::new(e.to_string(), None);
                return (refused(error, PARSE_FAILED), Outcome::Refused, None);
            }
        };
        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            let error = ServerError::new(
                format!(
                    "the document uses {aliases} aliases; at most {} are allowed (graphql.max_aliases)",
                    self.max_aliases
                ),
                None,
            );
            return (refused(error, TOO_COMPLEX), Outcome::Refused, None);
        }
        let schema = if introspection_only(&document) {
            &self.introspection
        } else {
            &self.data
        };
        let mut response = schema.execute(request).await;
        // Errors raised before execution carry no path; a resolver's error does.
        let outcome = if response.data == Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty())
        {
            Outcome::Refused
        } else {
            Outcome::Executed
        };
        for error in &mut response.errors {
            add_code(error, outcome);
        }
        let label = (outcome == Outcome::Executed)
            .then(|| operation_label(&document))
            .flatten();
        (response, outcome, label)
    }
}

fn refused(mut error: ServerError, code: &str) -> Response {
    set_code(&mut error, code);
    Response::from_errors(vec![error])
}

fn set_code(error: &mut ServerError, code: &str) {
    error
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default)
        .set("code", code);
}

/// Names the errors async-graphql raised itself (limits, validation, input coercion);
/// those of resolvers carry their code already (`error.rs`).
fn add_code(error: &mut ServerError, outcome: Outcome) {
    if error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
    {
        return;
    }
    let code = if error.message.starts_with("Query is nested too deep") {
        TOO_DEEP
    } else if error.message.starts_with("Query is too complex") {
        TOO_COMPLEX
    } else if outcome == Outcome::Refused {
        VALIDATION_FAILED
    } else {
        BAD_USER_INPUT
    };
    set_code(error, code);
}

/// Every alias written in the document (in operations and fragment definitions).
fn count_aliases(document: &ExecutableDocument) -> usize {
    let in_operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| aliases_in(&op.node.selection_set.node))
        .sum();
    let in_fragments: usize = document
        .fragments
        .values()
        .map(|f| aliases_in(&f.node.selection_set.node))
        .sum();
    in_operations + in_fragments
}

fn aliases_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + aliases_in(&field.node.selection_set.node)
            }
            Selection::InlineFragment(inline) => aliases_in(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Whether every operation selects only `__schema`, `__type` and `__typename` at its
/// root (through fragments too).
fn introspection_only(document: &ExecutableDocument) -> bool {
    document
        .operations
        .iter()
        .all(|(_, op)| root_is_introspection(document, &op.node.selection_set.node, 0))
}

fn root_is_introspection(document: &ExecutableDocument, set: &SelectionSet, hops: u8) -> bool {
    // Fragments spread into fragments: a cycle is invalid anyway, and deep chains are
    // not worth following at the root.
    if hops > 8 {
        return false;
    }
    set.items.iter().all(|item| match &item.node {
        Selection::Field(field) => matches!(
            field.node.name.node.as_str(),
            "__schema" | "__type" | "__typename"
        ),
        Selection::InlineFragment(inline) => {
            root_is_introspection(document, &inline.node.selection_set.node, hops + 1)
        }
        Selection::FragmentSpread(spread) => document
            .fragments
            .get(&spread.node.fragment_name.node)
            .is_some_and(|f| root_is_introspection(document, &f.node.selection_set.node, hops + 1)),
    })
}

/// Builds both schemas from the settings.
pub fn schemas(
    data: SunsetSchema,
    introspection: SunsetSchema,
    limits: &GraphqlSettings,
) -> Schemas {
    Schemas {
        data,
        introspection,
        max_aliases: limits.max_aliases,
    }
}

/// An operation's type and first root field.
pub type Label = (&'static str, String);

/// What a request asks, for metrics: the operation's type and its first root field (a
/// schema field once the document is valid, so the labels stay few).
fn operation_label(document: &ExecutableDocument) -> Option<Label> {
    use async_graphql::parser::types::OperationType;
    let (_, operation) = document.operations.iter().next()?;
    let kind = match operation.node.ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    let field = operation
        .node
        .selection_set
        .node
        .items
        .iter()
        .find_map(|item| match &item.node {
            Selection::Field(field) => Some(field.node.name.node.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "-".into());
    Some((kind, field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn introspection_gets_depth_twenty_and_no_more() {
        let schemas = super::super::build_schemas(None, &GraphqlSettings::default());
        let nested = |n: usize| {
            format!(
                "{{ __schema {{ types {{ fields {{ type {} {{ name }} {} }} }} }} }}",
                "{ ofType ".repeat(n),
                "} ".repeat(n)
            )
        };
        let (fits, _) = schemas.execute(Request::new(nested(15))).await;
        assert!(fits.errors.is_empty(), "{:?}", fits.errors);
        let (deep, outcome) = schemas.execute(Request::new(nested(16))).await;
        assert_eq!(outcome, Outcome::Refused);
        assert_eq!(deep.errors[0].message, "Query is nested too deep.");
    }

    fn parse(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap()
    }

    #[test]
    fn only_documents_selecting_introspection_at_the_root_count_as_introspection() {
        assert!(introspection_only(&parse(
            "{ __schema { types { name } } }"
        )));
        assert!(introspection_only(&parse(
            "query Q { ...F } fragment F on Query { __type(name: \"X\") { name } __typename }"
        )));
        assert!(!introspection_only(&parse(
            "{ __schema { types { name } } me { name } }"
        )));
        assert!(!introspection_only(&parse(
            "query A { __typename } query B { models { totalCount } }"
        )));
    }

    #[test]
    fn aliases_are_counted_wherever_they_are_written() {
        let doc = parse(
            "{ a: me { n: name } b: me { ...F } } fragment F on Me { x: name ... on Me { y: name } }",
        );
        assert_eq!(count_aliases(&doc), 5);
    }
}
