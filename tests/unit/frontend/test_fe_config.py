"""The frontend's settings: the ChatFrontend's environment (docs/contracts.md) read into typed values."""

import json

import pytest

from kubechat_frontend.config import load_settings


def test_environment_values_are_parsed_and_overrides_win():
    environ = {
        "KUBECHAT_FRONTEND_MODELS": json.dumps(
            [{"name": "a", "url": "http://a:8080/"}, {"name": "b", "url": "http://b"}]
        ),
        "KUBECHAT_FRONTEND_RATE_LIMIT": "7",
        "KUBECHAT_FRONTEND_COOKIE_SECURE": "false",
        "KUBECHAT_FRONTEND_TITLE": "Tavern",
    }
    settings = load_settings({"TITLE": "Override"}, environ=environ)
    assert settings["RATE_LIMIT"] == 7
    assert settings["COOKIE_SECURE"] is False
    assert settings["TITLE"] == "Override"
    # The first model becomes the default when none says so; trailing slashes never double up in URLs.
    assert settings["MODELS"] == [
        {"name": "a", "url": "http://a:8080", "default": True},
        {"name": "b", "url": "http://b", "default": False},
    ]


def test_secure_cookies_are_the_default():
    assert load_settings(environ={})["COOKIE_SECURE"] is True


def test_two_default_models_are_refused():
    models = [
        {"name": "a", "url": "http://a", "default": True},
        {"name": "b", "url": "http://b", "default": True},
    ]
    with pytest.raises(ValueError, match="only one model"):
        load_settings({"MODELS": models}, environ={})


def test_personas_need_unique_names_and_get_defaults():
    settings = load_settings({"PERSONAS": [{"name": "bard", "character": "a bard"}]}, environ={})
    assert settings["PERSONAS"] == [{"name": "bard", "character": "a bard", "world": "", "scratchpad": False}]
    with pytest.raises(ValueError, match="unique"):
        load_settings({"PERSONAS": [{"name": "x"}, {"name": "x"}]}, environ={})
