"""Whether an MLflow tracking server is one, reachable and willing: asked before a command's work.

MLflow's client retries a server that does not answer for about four minutes and then raises, after
the evaluation that wanted logging has been computed; a web server that is not MLflow, a proxy whose
backend is down (502s) or a login the client lacks fail the same way. `check_server` asks once, as
MLflow's own client would ask (its login and TLS settings), and says in one line what is wrong.
"""

from __future__ import annotations


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Raise MissingResourceError (one line) unless `uri` answers /health with 200 and its MLflow
    API with JSON, with the credentials MLflow's client would send."""
    import requests

    from evalkit.errors import MissingResourceError

    # as MLflow's own client reaches it: its login (the variables, else ~/.mlflow/credentials; basic
    # auth ahead of a token) and TLS settings, for /health too (a proxy may guard every path)
    from mlflow.utils.credentials import get_default_host_creds

    creds = get_default_host_creds(uri)
    auth, headers = None, {}
    if creds.username and creds.password:
        auth = (creds.username, creds.password)
    elif creds.token:
        headers["Authorization"] = f"Bearer {creds.token}"
    kw = dict(timeout=timeout, auth=auth, headers=headers,
              verify=False if creds.ignore_tls_verification else (creds.server_cert_path or True),
              cert=creds.client_cert_path or None)
    try:  # an MLflow server answers /health with 200 "OK", and its API with JSON
        answer = requests.get(uri.rstrip("/") + "/health", **kw)
        api = requests.get(uri.rstrip("/") + "/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                           **kw) if answer.status_code == 200 else None
    except requests.exceptions.SSLError as e:  # up, but its certificate is not trusted here
        raise MissingResourceError(f"MLflow tracking server {uri}: its TLS certificate is not trusted "
                                   f"({type(e).__name__}); set MLFLOW_TRACKING_SERVER_CERT_PATH to its CA, or "
                                   "MLFLOW_TRACKING_INSECURE_TLS=true") from None
    except requests.RequestException as e:
        why = type(e).__name__
        raise MissingResourceError(f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI) is not reachable "
                                   f"({why}); start it (mlflow server), point MLFLOW_TRACKING_URI at a "
                                   "reachable one or unset it for a local store, or pass --no-mlflow where "
                                   "offered") from None
    refused = next((r.status_code for r in (answer, api) if r is not None and r.status_code in (401, 403)), None)
    if refused is not None:  # an MLflow (or its proxy) that wants a login
        raise MissingResourceError(f"MLflow tracking server {uri} " + (
            "refused the login (MLFLOW_TRACKING_USERNAME/PASSWORD, MLFLOW_TRACKING_TOKEN or "
            "~/.mlflow/credentials); check it" if auth or headers else
            "asks for a login; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
            "MLFLOW_TRACKING_TOKEN)") + f" (HTTP {refused})")
    if answer.status_code != 200 or api is None or api.status_code != 200 or not _is_json(api):
        # something answers but is no MLflow server (another web server on the port, a proxy whose
        # backend is down: MLflow retried its 502s for four minutes, session 32)
        what = f"/health: HTTP {answer.status_code}" if answer.status_code != 200 else f"its MLflow API: HTTP {api.status_code}"
        raise MissingResourceError(f"{uri} (MLFLOW_TRACKING_URI) answers, but not as an MLflow tracking server "
                                   f"({what}); check the address and port, or start the server behind it")


def _is_json(response) -> bool:
    try:
        return isinstance(response.json(), dict)
    except ValueError:
        return False


__all__ = ["check_server"]
