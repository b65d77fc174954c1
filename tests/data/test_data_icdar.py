import pytest

from scenetext.data.icdar import (
    MalformedLine,
    TextRegion,
    format_ground_truth_line,
    format_result_line,
    parse_ground_truth_line,
    parse_result_line,
    read_ground_truth,
    read_results,
)


def test_ground_truth_file_with_bom_crlf_commas_quotes_and_dont_care(tmp_path):
    path = tmp_path / "gt_img_1.txt"
    lines = [
        "377,117,463,117,465,130,378,130,Genaxis Theatre",
        "",
        "374,155,409,155,409,170,374,170,###",
        '1,2,3,2,3,4,1,4,"say \\"hi\\", \\\\o/"',
        "1,2,3,2,3,4,1,4,a,b,c",
        "  ",
    ]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    regions = read_ground_truth(path)
    assert regions == [
        TextRegion((377, 117, 463, 117, 465, 130, 378, 130), "Genaxis Theatre", False),
        TextRegion((374, 155, 409, 155, 409, 170, 374, 170), "###", True),
        TextRegion((1, 2, 3, 2, 3, 4, 1, 4), 'say "hi", \\o/', False),
        TextRegion((1, 2, 3, 2, 3, 4, 1, 4), "a,b,c", False),
    ]


def test_polygon_ground_truth_delimits_numeric_transcriptions():
    six_points = "0,0,10,0,20,0,20,5,10,5,0,5"
    expected = tuple(float(value) for value in six_points.split(","))
    assert parse_ground_truth_line(f"{six_points},hello", None).points == expected
    assert parse_ground_truth_line(f"{six_points},2011", None).text == "2011"
    assert parse_ground_truth_line(f"{six_points},12,34", None).text == "12,34"
    assert parse_ground_truth_line(f'{six_points},"1,2,3"', None).text == "1,2,3"
    # Quadrilateral mode always cuts after 8 numbers, whatever follows.
    assert parse_ground_truth_line("1,1,2,1,2,2,1,2,5,6,7", 4).text == "5,6,7"


def test_result_lines_with_and_without_score():
    assert parse_result_line("1,2,3,4,5,6,7,8") == TextRegion((1, 2, 3, 4, 5, 6, 7, 8))
    assert parse_result_line("1,2,3,4,5,6,7,8,0.75").score == 0.75
    polygon = parse_result_line("0,0,4,0,8,0,8,2,0,2,0.5", None)
    assert polygon.points == (0, 0, 4, 0, 8, 0, 8, 2, 0, 2)
    assert polygon.score == 0.5
    assert parse_result_line("0,0,4,0,8,0,8,2,0,2", None).score is None
    with pytest.raises(ValueError, match="8 coordinates and an optional score, found 10"):
        parse_result_line("1,2,3,4,5,6,7,8,9,10")


def test_malformed_lines_raise_with_file_and_line_number(tmp_path):
    path = tmp_path / "gt_img_7.txt"
    path.write_bytes(b"1,1,2,1,2,2,1,2,ok\n1,1,2,x,2,2,1,2,bad\n")
    with pytest.raises(ValueError, match=r"gt_img_7.txt:2: expected a finite number, found 'x'"):
        read_ground_truth(path)


def test_malformed_lines_are_skipped_and_reported_with_a_handler(tmp_path):
    path = tmp_path / "gt_img_3.txt"
    path.write_bytes(b"1,1,2,1,2,2,1,2,ok\n1,1,2,1\n1,1,2,1,2,2,1,2,caf\xe9\n3,3,4,3,4,4,3,4,fine\n")
    problems: list[MalformedLine] = []
    regions = read_ground_truth(path, on_malformed=problems.append)
    assert [region.text for region in regions] == ["ok", "fine"]
    assert [(problem.line_number, problem.path) for problem in problems] == [(2, str(path)), (3, str(path))]
    assert "utf-8" in problems[1].reason


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"res_img_9\.txt"):
        read_results(tmp_path / "res_img_9.txt")


@pytest.mark.parametrize("text", ["plain", "with,comma", '"quoted"', "back\\slash", "42", "###", ""])
def test_formatted_ground_truth_lines_read_back_identically(text):
    points = (0.0, 0.0, 30.0, 0.0, 30.0, 10.0, 0.0, 10.0)
    assert parse_ground_truth_line(format_ground_truth_line(points, text)).text == text
    polygon = (0.5, 0.25, 30.0, 0.0, 60.0, 2.0, 60.0, 12.0, 0.0, 10.0)
    line = format_ground_truth_line(polygon, text, round_to_int=False)
    assert parse_ground_truth_line(line, None) == TextRegion(polygon, text, text == "###")


def test_formatted_result_line_reads_back():
    line = format_result_line((1.4, 2.6, 3, 4, 5, 6, 7, 8), score=0.9)
    assert line == "1,3,3,4,5,6,7,8,0.9"
    assert parse_result_line(line) == TextRegion((1, 3, 3, 4, 5, 6, 7, 8), score=0.9)


def test_transcriptions_are_unquoted_like_the_official_script():
    quad = "1,1,9,1,9,5,1,5"
    assert parse_ground_truth_line(f'{quad}, "quoted" ').text == "quoted"
    assert parse_ground_truth_line(f"{quad}, kept as is ").text == " kept as is "
    # `\\` is unescaped before `\"`, so `\\"` ends up as a bare quote.
    assert parse_ground_truth_line(f'{quad},"a\\\\"b"').text == 'a"b'
    assert parse_ground_truth_line(f'{quad},"###"').ignore
    assert not parse_ground_truth_line(f"{quad},### ").ignore
