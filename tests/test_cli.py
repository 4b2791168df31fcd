"""The `lookalike` command's contract, run as users run it."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from lookalike.cli import main
from tests.support.models import write_bare_model
from tests.support.photos import encode, photo, write_gallery

BIN = Path(sys.executable).parent


@pytest.fixture
def env(tmp_path, model_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MODEL", str(model_path))
    monkeypatch.setenv("LOOKALIKE_STORE", str(tmp_path / "default-store"))
    return tmp_path


def index(capsys, directory, *extra) -> tuple[int, str]:
    status = main(["index", str(directory), *extra])
    return status, capsys.readouterr().err


def search_json(capsys, *argv) -> tuple[int, list[dict]]:
    status = main(["search", "--json", *argv])
    out = capsys.readouterr().out
    return status, [json.loads(line) for line in out.splitlines()]


def test_index_recognises_images_by_content_and_reports_failures(env, capsys, monkeypatch):
    root = env / "gallery"
    write_gallery(root)
    (root / "notes.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(encode(photo("coffee"))[:2000])
    (root / ".hidden.jpg").write_bytes(encode(photo("coffee")))
    (root / ".cache").mkdir()
    (root / ".cache" / "thumb.jpg").write_bytes(encode(photo("rocket")))
    monkeypatch.chdir(env)
    status, err = index(capsys, "./gallery/../gallery/")
    assert status == 0
    assert "indexed 7, unchanged 0, removed 0, failed 1" in err
    assert "broken.jpg" in err
    _, lines = search_json(capsys, str(root / "cats" / "chelsea.JPEG"), "-k", "10")
    found = {hit["id"] for hit in lines[0]["results"]}
    assert found == {"astronaut.jpg", "coffee", "rocket.webp", "nested/deeper/motorcycle.png", "hubble.jpg", "retina.jpg"}


def test_reindex_skips_unchanged_reembeds_changed_removes_gone(env, capsys):
    root = env / "gallery"
    write_gallery(root)
    store = env / "store"
    assert index(capsys, root, "--store", str(store))[0] == 0
    (root / "retina.jpg").unlink()
    (root / "hubble.jpg").write_bytes(encode(photo("chelsea"), quality=80))
    status, err = index(capsys, root, "--store", str(store))
    assert status == 0
    assert "indexed 1, unchanged 5, removed 1, failed 0" in err
    _, lines = search_json(capsys, "--store", str(store), "--no-dedupe", "-k", "2", str(root / "cats" / "chelsea.JPEG"))
    assert [hit["id"] for hit in lines[0]["results"]][0] == "hubble.jpg"


def test_index_draws_its_progress_bar_on_stderr(env, capsys):
    root = env / "gallery"
    write_gallery(root)
    assert main(["index", str(root)]) == 0
    captured = capsys.readouterr()
    assert "indexing: 100%" in captured.err and "7/7" in captured.err
    assert captured.out == "", "the bar went to stdout, which carries results only"


def test_a_command_that_fails_before_indexing_leaves_no_empty_bar(env, capsys):
    root = env / "gallery"
    write_gallery(root)
    assert main(["reindex", str(root), "--store", str(env / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("lookalike: no store at ")


def test_search_json_contract(env, capsys):
    root = env / "gallery"
    write_gallery(root)
    index(capsys, root)
    query = env / "query.png"
    query.write_bytes(encode(photo("rocket").resize((256, 256)), "PNG"))
    garbage = env / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    args = [str(query), str(garbage), "missing.png", str(query)]
    status, lines = search_json(capsys, "-k", "3", *args)
    assert status == 1
    assert [line["query"] for line in lines] == args
    assert lines[0]["results"][0]["id"] == "rocket.webp" and len(lines[0]["results"]) == 3
    assert lines[0] == lines[3]
    scores = [hit["score"] for hit in lines[0]["results"]]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    for bad in lines[1:3]:
        assert bad["results"] == [] and bad["error"]
    assert set(lines[0]) == {"query", "results"}


def test_search_with_box_and_block_list(env, capsys):
    root = env / "gallery"
    write_gallery(root)
    index(capsys, root)
    collage = env / "collage.jpg"
    canvas = Image.new("RGB", (600, 300))
    canvas.paste(photo("astronaut").resize((300, 300)), (0, 0))
    canvas.paste(photo("coffee").resize((300, 300)), (300, 0))
    collage.write_bytes(encode(canvas, quality=95))
    _, lines = search_json(capsys, "--box", "300,0,600,300", "-k", "1", str(collage))
    assert lines[0]["results"][0]["id"] == "coffee"
    assert main(["block", "coffee"]) == 0
    _, lines = search_json(capsys, "--box", "300,0,600,300", "-k", "1", str(collage))
    assert lines[0]["results"][0]["id"] != "coffee"
    main(["blocked"])
    assert capsys.readouterr().out.split() == ["coffee"]
    assert main(["unblock", "coffee"]) == 0
    _, lines = search_json(capsys, "--box", "300,0,600,300", "-k", "1", str(collage))
    assert lines[0]["results"][0]["id"] == "coffee"
    status, lines = search_json(capsys, "--box", "300,0,700,300", str(collage))
    assert status == 1 and "box" in lines[0]["error"]


def test_installed_entry_point(env):
    root = env / "gallery"
    write_gallery(root)
    run = lambda *argv: subprocess.run([str(BIN / "lookalike"), *argv], capture_output=True, text=True, timeout=300)
    indexed = run("index", str(root))
    assert indexed.returncode == 0, indexed.stderr
    assert "indexed 7" in indexed.stderr and indexed.stdout == ""
    searched = run("search", "--json", "-k", "2", str(root / "coffee"))
    assert searched.returncode == 0
    (line,) = searched.stdout.splitlines()
    assert len(json.loads(line)["results"]) == 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _poll(check, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if result := check():
                return result
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.25)


def test_serve_watch_indexes_a_drop_folder_within_seconds(env):
    root = env / "drop"
    root.mkdir()
    (root / "coffee.jpg").write_bytes(encode(photo("coffee")))
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "lookalike"), "serve", "--watch", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    query = encode(photo("rocket").resize((200, 200)), "PNG")

    def top_ids():
        response = requests.post(f"{base}/search", files={"image": ("q.png", query, "image/png")}, data={"k": "5"}, timeout=30)
        return [hit["id"] for hit in response.json()["results"]]

    try:
        _poll(lambda: requests.get(f"{base}/health", timeout=5).ok, 120)
        assert top_ids() == ["coffee.jpg"]
        (root / "new").mkdir()
        shutil.copyfile(Path(__file__).parent / "support" / "photos.py", root / "new" / "readme.py")
        (root / "new" / "rocket.jpg").write_bytes(encode(photo("rocket")))
        started = time.monotonic()
        assert _poll(lambda: top_ids()[0] == "new/rocket.jpg")
        added_after = time.monotonic() - started
        (root / "new" / "rocket.jpg").unlink()
        assert _poll(lambda: top_ids() == ["coffee.jpg"])
        assert added_after < 10
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_logs_as_the_lookalike_service_when_none_is_configured(env):
    root = env / "drop"
    root.mkdir()
    (root / "coffee.jpg").write_bytes(encode(photo("coffee")))
    port = _free_port()
    variables = {name: value for name, value in os.environ.items() if name != "POWERTOOLS_SERVICE_NAME"}
    server = subprocess.Popen(
        [str(BIN / "lookalike"), "serve", "--watch", str(root), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=variables, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _poll(lambda: requests.get(f"{base}/health", timeout=5).ok, 120)
        query = encode(photo("rocket").resize((200, 200)), "PNG")
        assert requests.post(f"{base}/search", files={"image": ("q.png", query, "image/png")}, timeout=30).ok
    finally:
        server.terminate()
        logged, _ = server.communicate(timeout=30)
    records = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert [record["service"] for record in records if record["message"] == "search"] == ["lookalike"], logged


def test_a_configured_service_name_is_kept(env, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "lookalike-staging")
    assert main(["blocked"]) == 0
    assert os.environ["POWERTOOLS_SERVICE_NAME"] == "lookalike-staging"


@pytest.mark.parametrize("box", ["1,2,3", "a,b,c,d", "10,10,5,5"])
def test_malformed_box_is_a_usage_error(env, capsys, box):
    with pytest.raises(SystemExit) as exit:
        main(["search", "--box", box, "query.png"])
    assert exit.value.code == 2
    assert "--box" in capsys.readouterr().err


def test_search_refuses_a_store_that_does_not_exist(env, capsys):
    query = env / "query.png"
    query.write_bytes(encode(photo("rocket"), "PNG"))
    assert main(["search", "--json", "--store", str(env / "typo"), str(query)]) == 2
    assert "no store at" in capsys.readouterr().err
    assert not (env / "typo").exists()


def test_index_reports_a_file_name_that_is_not_utf8_and_indexes_the_rest(env, capsys):
    root = env / "gallery"
    write_gallery(root)
    with open(bytes(root) + b"/bad\xff.jpg", "wb") as bad_file:
        bad_file.write(encode(photo("coffee")))
    status, err = index(capsys, root)
    assert status == 0, err
    assert "indexed 7, unchanged 0, removed 0, failed 1" in err
    assert "not valid UTF-8" in err


def test_index_of_another_folder_into_a_store_is_refused_and_changes_nothing(env, capsys):
    first, second = env / "first", env / "second"
    write_gallery(first)
    (second / "only").mkdir(parents=True)
    (second / "only" / "one.jpg").write_bytes(encode(photo("coffee")))
    assert index(capsys, first)[0] == 0
    status, err = index(capsys, second)
    assert status == 2
    assert err.strip().splitlines()[-1].startswith(f"lookalike: the store at {env / 'default-store'} holds the gallery folder {first}")
    assert "Traceback" not in err
    assert index(capsys, first)[1].splitlines()[-1].startswith("indexed 0, unchanged 7, removed 0")


def test_search_of_a_damaged_store_is_one_line_naming_the_repair(env, capsys):
    root = env / "gallery"
    write_gallery(root)
    assert index(capsys, root)[0] == 0
    (index_file,) = (env / "default-store").glob("index-*.faiss")
    index_file.write_bytes(index_file.read_bytes()[:100])
    assert main(["search", str(root / "cats" / "chelsea.JPEG")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lookalike: the store at {env / 'default-store'} is damaged"), err
    assert "lookalike index DIR --store" in err and len(err.strip().splitlines()) == 1


def indexed_store(env, capsys) -> Path:
    root = env / "gallery"
    root.mkdir()
    (root / "coffee.jpg").write_bytes(encode(photo("coffee")))
    assert index(capsys, root)[0] == 0
    return env / "default-store"


def test_search_of_a_fifo_or_a_device_is_one_error_line_per_query(env, capsys):
    indexed_store(env, capsys)
    fifo = env / "query.jpg"
    os.mkfifo(fifo)
    status, lines = search_json(capsys, str(fifo), "/dev/zero")
    assert status == 1
    assert [line["error"] for line in lines] == [
        f"cannot read {fifo}: a FIFO, not a regular file",
        "cannot read /dev/zero: a character device, not a regular file",
    ]


def test_search_of_a_query_file_over_the_cap_is_an_error_line(env, capsys, monkeypatch):
    indexed_store(env, capsys)
    query = env / "query.jpg"
    query.write_bytes(encode(photo("rocket")))
    monkeypatch.setattr("lookalike.cli.MAX_IMAGE_FILE_BYTES", query.stat().st_size - 1)
    status, lines = search_json(capsys, str(query))
    assert status == 1 and "cannot read" in lines[0]["error"] and "bytes, the most an image file may hold" in lines[0]["error"]


@pytest.mark.parametrize("content", [b"just some words, not a model", b""])
def test_a_model_that_is_not_onnx_is_a_one_line_error(env, capsys, content):
    root = env / "gallery"
    write_gallery(root)
    model = env / "model.onnx"
    model.write_bytes(content)
    assert main(["index", str(root), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lookalike: --model {model} is not an ONNX model onnxruntime can load: ") and err.count("\n") == 1, err


def test_a_model_without_lookalikes_metadata_is_a_one_line_error(env, capsys, tmp_path):
    model = write_bare_model(tmp_path / "bare.onnx")
    query = env / "query.png"
    query.write_bytes(encode(photo("rocket"), "PNG"))
    assert main(["search", str(query), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lookalike: --model {model} lacks the metadata Lookalike needs") and err.count("\n") == 1, err


@pytest.mark.parametrize("command", ["index", "block"])
def test_a_store_that_is_a_file_is_a_one_line_error(env, capsys, command):
    root = env / "gallery"
    write_gallery(root)
    not_a_store = env / "store.txt"
    not_a_store.write_text("a file")
    argv = [command, str(root) if command == "index" else "coffee", "--store", str(not_a_store)]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"lookalike: --store {not_a_store} is a file, not a store directory\n"
    assert not_a_store.read_text() == "a file"
