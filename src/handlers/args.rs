//! A job's positional and keyword arguments, and their binding to typed parameters.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_pickle::{HashableValue, Value};

use super::{HandlerError, PyValue};

/// The `args` and `kwargs` of a job, as decoded from its `data` payload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobArgs {
    /// Positional arguments, in order.
    pub args: Vec<PyValue>,
    /// Keyword arguments by name.
    pub kwargs: BTreeMap<String, PyValue>,
}

impl JobArgs {
    /// Binds positional and keyword arguments to the parameter names of a Python signature
    /// (`params`, in order), as Python does for a call, and deserializes the resulting mapping
    /// into `T` (a `#[derive(Deserialize)]` struct whose fields are those names).
    ///
    /// Fails like Python's `TypeError` on too many positional arguments, an unknown keyword,
    /// or an argument given both ways; and on a value of the wrong type.
    pub fn bind<T: DeserializeOwned>(&self, params: &[&str]) -> Result<T, HandlerError> {
        if self.args.len() > params.len() {
            return Err(HandlerError::permanent(
                "TypeError",
                format!(
                    "takes at most {} positional arguments but {} were given",
                    params.len(),
                    self.args.len()
                ),
            ));
        }
        let mut bound: BTreeMap<HashableValue, Value> = BTreeMap::new();
        for (name, value) in params.iter().zip(&self.args) {
            bound.insert(HashableValue::String((*name).to_string()), value.clone());
        }
        for (name, value) in &self.kwargs {
            if !params.contains(&name.as_str()) {
                return Err(HandlerError::permanent(
                    "TypeError",
                    format!("got an unexpected keyword argument '{name}'"),
                ));
            }
            let key = HashableValue::String(name.clone());
            if bound.contains_key(&key) {
                return Err(HandlerError::permanent(
                    "TypeError",
                    format!("got multiple values for argument '{name}'"),
                ));
            }
            bound.insert(key, value.clone());
        }
        serde_pickle::from_value(Value::Dict(bound))
            .map_err(|e| HandlerError::permanent("TypeError", format!("invalid arguments: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Params {
        a: String,
        #[serde(default)]
        b: Option<i64>,
    }

    #[test]
    fn binds_positional_and_keyword_arguments() {
        let args = JobArgs {
            args: vec![Value::String("x".into())],
            kwargs: BTreeMap::from([("b".to_string(), Value::I64(3))]),
        };
        let p: Params = args.bind(&["a", "b"]).unwrap();
        assert_eq!(
            p,
            Params {
                a: "x".into(),
                b: Some(3)
            }
        );
    }

    #[test]
    fn rejects_duplicate_unknown_and_surplus_arguments() {
        let dup = JobArgs {
            args: vec![Value::String("x".into())],
            kwargs: BTreeMap::from([("a".to_string(), Value::String("y".into()))]),
        };
        assert!(dup
            .bind::<Params>(&["a", "b"])
            .unwrap_err()
            .message
            .contains("multiple values"));
        let unknown = JobArgs {
            args: vec![],
            kwargs: BTreeMap::from([("z".to_string(), Value::None)]),
        };
        assert!(unknown
            .bind::<Params>(&["a", "b"])
            .unwrap_err()
            .message
            .contains("unexpected keyword"));
        let surplus = JobArgs {
            args: vec![Value::None, Value::None, Value::None],
            kwargs: BTreeMap::new(),
        };
        assert!(surplus
            .bind::<Params>(&["a", "b"])
            .unwrap_err()
            .message
            .contains("at most 2"));
    }

    #[test]
    fn wrong_type_is_an_error() {
        let args = JobArgs {
            args: vec![Value::I64(1)],
            kwargs: BTreeMap::new(),
        };
        let err = args.bind::<Params>(&["a", "b"]).unwrap_err();
        assert_eq!(err.exc_type, "TypeError");
    }
}
