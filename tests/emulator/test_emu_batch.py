"""`batch`: references, halt, encodings, PHP-shaped sub-maps, limits."""

from urllib.parse import quote

from emu_helpers import RestClient


def test_batch_references_earlier_result(client: RestClient, emulator):
    result = client.result(
        "batch",
        {
            "halt": 0,
            "cmd": {
                "lead": "crm.lead.add?fields[TITLE]=Batch",
                "comment": (
                    "crm.timeline.comment.add?fields[ENTITY_TYPE]=lead"
                    "&fields[ENTITY_ID]=$result[lead]&fields[COMMENT]=hi"
                ),
                "read": "crm.lead.get?id=$result[lead]",
            },
        },
    )
    lead_id = result["result"]["lead"]
    comment = emulator.portal.timeline_comments[result["result"]["comment"]]
    assert comment["ENTITY_ID"] == str(lead_id)
    assert result["result"]["read"]["TITLE"] == "Batch"


def test_batch_reference_to_nested_field(client: RestClient):
    result = client.result(
        "batch",
        {
            "cmd": {
                "me": "user.current",
                "dept": "department.get?ID=$result[me][UF_DEPARTMENT][0]",
            }
        },
    )
    assert result["result"]["dept"][0]["NAME"] == "Студия «Лотос»"


def test_batch_reference_embedded_in_text(client: RestClient):
    result = client.result(
        "batch",
        {
            "cmd": {
                "lead": "crm.lead.add?fields[TITLE]=A",
                "copy": "crm.lead.add?fields[TITLE]=Copy of $result[lead]",
                "read": "crm.lead.get?id=$result[copy]",
            }
        },
    )
    assert result["result"]["read"]["TITLE"] == f"Copy of {result['result']['lead']}"


def test_batch_errors_do_not_stop_without_halt(client: RestClient):
    result = client.result(
        "batch",
        {"halt": 0, "cmd": {"bad": "crm.lead.get?id=999999", "good": "profile"}},
    )
    assert result["result_error"]["bad"]["error_description"] == "Not found"
    assert result["result"]["good"]["ID"] == "1"


def test_batch_halt_stops_after_error(client: RestClient):
    result = client.result(
        "batch",
        {
            "halt": 1,
            "cmd": {
                "first": "profile",
                "bad": "no.such.method",
                "never": "crm.lead.add?fields[TITLE]=never",
            },
        },
    )
    assert list(result["result"]) == ["first"]
    assert result["result_error"]["bad"]["error"] == "ERROR_METHOD_NOT_FOUND"
    assert "never" not in result["result_time"]


def test_batch_outer_status_200_with_errors(client: RestClient):
    response = client.call("batch", {"cmd": {"bad": "no.such.method"}})
    assert response.status_code == 200


def test_batch_empty_maps_are_lists(client: RestClient):
    result = client.result("batch", {"cmd": {"me": "profile"}})
    assert result["result_error"] == []
    assert result["result_total"] == []
    assert result["result_next"] == []


def test_batch_list_command_total_and_next(client: RestClient, emulator):
    for number in range(55):
        emulator.portal.create_lead({"TITLE": str(number)}, kind="form", message="x")
    result = client.result("batch", {"cmd": {"leads": "crm.lead.list?select[]=ID"}})
    assert result["result_total"]["leads"] == 55
    assert result["result_next"]["leads"] == 50
    assert len(result["result"]["leads"]) == 50


def test_batch_list_of_commands_gives_lists(client: RestClient):
    result = client.result("batch", {"cmd": ["profile", "server.time"]})
    assert isinstance(result["result"], list)
    assert result["result"][0]["ID"] == "1"


def test_batch_form_mode_double_encoded(client: RestClient):
    # The command string is itself a query string, so `&` inside a value is
    # %26 in it and %2526 on the wire.
    command = "crm.lead.add?fields[TITLE]=" + quote("Tom & Jerry", safe="")
    result = client.result(
        "batch",
        {"cmd[lead]": command, "cmd[read]": "crm.lead.get?id=$result[lead]"},
        form=True,
    )
    assert result["result"]["read"]["TITLE"] == "Tom & Jerry"


def test_batch_nested_batch_not_allowed(client: RestClient):
    result = client.result("batch", {"cmd": {"inner": "batch?cmd[a]=profile"}})
    assert result["result_error"]["inner"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"


def test_batch_more_than_fifty_commands(client: RestClient):
    commands = {f"c{number}": "server.time" for number in range(52)}
    result = client.result("batch", {"cmd": commands})
    assert len(result["result"]) == 50
    assert result["result_error"]["c51"]["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"


def test_batch_scope_checked_per_command(make_emulator):
    handle = make_emulator(scopes=("crm",))
    result = RestClient(handle).result(
        "batch", {"cmd": {"tasks": "tasks.task.list", "leads": "crm.lead.list"}}
    )
    assert result["result_error"]["tasks"]["error"] == "insufficient_scope"
    assert "leads" in result["result"]


def test_batch_result_time_per_command(client: RestClient):
    result = client.result("batch", {"cmd": {"me": "profile"}})
    assert {"start", "finish", "duration", "processing"} <= set(
        result["result_time"]["me"]
    )
