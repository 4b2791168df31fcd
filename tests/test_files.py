"""Reading files anyone may have put in place: only regular files, never more than the cap."""

import os
import threading

import pytest

from lookalike.files import FileTooLargeError, NotARegularFileError, read_regular_file


def test_a_regular_file_is_read_whole(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff" + bytes(5000))
    assert read_regular_file(path, 5003) == path.read_bytes()


def test_a_fifo_is_refused_at_once_without_a_writer(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_error_of(read_regular_file, fifo, 100)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], NotARegularFileError) and outcome[0].strerror == "a FIFO, not a regular file"


def test_a_device_is_refused_before_any_byte_is_read():
    with pytest.raises(NotARegularFileError, match="a character device, not a regular file"):
        read_regular_file("/dev/zero", 100)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(NotARegularFileError, match="a directory"):
        read_regular_file(tmp_path, 100)


def test_a_file_over_the_cap_is_refused_from_its_size(tmp_path):
    sparse = tmp_path / "huge.jpg"
    with sparse.open("wb") as file:
        file.truncate(600 * 1024 * 1024)  # sparse: costs no disk, would cost 600 MB to read
    with pytest.raises(FileTooLargeError, match="over 1,000 bytes"):
        read_regular_file(sparse, 1000)


def test_a_file_at_the_cap_is_read_and_one_byte_more_is_not(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(bytes(1000))
    assert len(read_regular_file(path, 1000)) == 1000
    with pytest.raises(FileTooLargeError):
        read_regular_file(path, 999)


def test_a_final_symbolic_link_is_followed_only_when_asked(tmp_path):
    target = tmp_path / "photo.jpg"
    target.write_bytes(b"pixels")
    link = tmp_path / "link.jpg"
    link.symlink_to(target)
    assert read_regular_file(link, 100) == b"pixels"
    with pytest.raises(NotARegularFileError, match="symbolic link"):
        read_regular_file(link, 100, follow_symlinks=False)


def _error_of(function, *args):
    try:
        function(*args)
    except OSError as error:
        return error
    return None
