"""The MLflow pyfunc face of a bundle, logged as "model from code": `mlflow.pyfunc.load_model` and
`mlflow models serve` run the bundle through `modelyard.loader.load`, so MLflow users get the same predictions.

MLflow executes this file when it loads the model; nothing else imports it. Inputs here come from remote clients
(`mlflow models serve`), so each goes through the learner's `parse_input`, as in modelyard's own server: images
are base64 strings or bytes, and a string naming a file on the server is refused, never opened.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class BundleModel(mlflow.pyfunc.PythonModel):
    """Loads the bundle shipped as the artifact "bundle" and predicts lists or DataFrames of inputs.

    The DataFrame hint keeps MLflow from converting inputs (it passes DataFrames and lists through as given).
    """

    def load_context(self, context: Any) -> None:
        from modelyard.loader import load

        self.model = load(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        top_k = int((params or {}).get("top_k", 1))
        predictions = self.model.predict(self._parsed(_inputs(model_input)), top_k=top_k)
        return pd.DataFrame(predictions)

    def _parsed(self, inputs: list[Any]) -> list[Any]:
        """Remote inputs decoded the way the HTTP server decodes them (no file paths); a 400 for a bad one."""
        parse = getattr(self.model.learner, "parse_input", None)
        if parse is None:
            return inputs
        from mlflow.exceptions import MlflowException

        from modelyard.errors import UserError

        parsed = []
        for i, item in enumerate(inputs):
            try:
                parsed.append(parse(item))
            except (ValueError, UserError) as err:
                raise MlflowException.invalid_parameter_value(f"inputs.{i}: {err}") from None
        return parsed


def _inputs(model_input: Any) -> list[Any]:
    """A DataFrame gives its "inputs"/"text" column (else its first column); lists pass as is."""
    if isinstance(model_input, pd.DataFrame):
        for column in ("inputs", "text"):
            if column in model_input.columns:
                return model_input[column].tolist()
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].tolist()
        return model_input.to_dict(orient="records")
    if isinstance(model_input, pd.Series):
        return model_input.tolist()
    if isinstance(model_input, (str, dict)):
        return [model_input]
    return list(model_input)


mlflow.models.set_model(BundleModel())
