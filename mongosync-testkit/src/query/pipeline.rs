//! Aggregation pipelines: parsing stages with the server's errors and running them over a
//! stream of documents.

use bson::Document;

use crate::error::Result;

/// What a pipeline may ask of the server beyond its input documents: other collections
/// (`$lookup`, `$unionWith`), collection statistics (`$collStats`), and writes (`$out`,
/// `$merge`). The command layer implements it over the catalog.
pub trait PipelineEnv {
    /// Every document of `db.coll` (empty if it does not exist), in natural order.
    fn collection_documents(&self, db: &str, coll: &str) -> Result<Vec<Document>>;
    /// The `$collStats` document for the pipeline's own collection, for the given options.
    fn coll_stats(&self, options: &Document) -> Result<Document>;
    /// Replaces `db.coll` with `docs` (`$out`).
    fn write_out(&self, db: &str, coll: &str, docs: Vec<Document>) -> Result<()>;
    /// Merges `docs` into `db.coll` (`$merge` with its `on`, `whenMatched`, `whenNotMatched`).
    fn merge_into(&self, db: &str, coll: &str, docs: Vec<Document>, spec: &Document) -> Result<()>;
}

/// A parsed pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    _private: (),
}

impl Pipeline {
    /// Parses `stages`. An unknown stage fails with 40324 ("Unrecognized pipeline stage name:
    /// '$foo'"); a stage that is not a one-key document with 40323; `$out`/`$merge` not last
    /// with 40601; and so on as on the server.
    pub fn parse(stages: &[Document], vars: &Document) -> Result<Pipeline> {
        let _ = (stages, vars);
        todo!("pipeline")
    }

    /// Whether the first stage is `$collStats` (which then replaces the input) or another
    /// stage that does not read the collection (`$documents`).
    pub fn reads_input(&self) -> bool {
        todo!("pipeline")
    }

    /// Runs the pipeline over `input` (the collection's documents in natural order).
    pub fn run(
        &self,
        input: Vec<Document>,
        db: &str,
        env: &dyn PipelineEnv,
    ) -> Result<Vec<Document>> {
        let _ = (input, db, env);
        todo!("pipeline")
    }
}
