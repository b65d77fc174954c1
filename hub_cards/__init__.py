"""Model cards and Hub publishing: cards rendered from a saved folder and an evaluation JSON, and
`publish_folder`, which checks, verifies and uploads a folder in one commit (`scenetext push`)."""

from .checks import check_model_folder, check_repo_id, validate_card_metadata
from .eval_results import eval_results, load_evaluation_report, results_table
from .model_kinds import MODEL_KINDS, ModelKind, model_kind
from .publish import assemble_upload_folder, publish_folder
from .render import render_model_card
from .verify import VerificationError, verify_folder

__all__ = [
    "MODEL_KINDS",
    "ModelKind",
    "VerificationError",
    "assemble_upload_folder",
    "check_model_folder",
    "check_repo_id",
    "eval_results",
    "load_evaluation_report",
    "model_kind",
    "publish_folder",
    "render_model_card",
    "results_table",
    "validate_card_metadata",
    "verify_folder",
]
