"""Templates live in the database: versions, activation, preview, a sandbox; rendering uses them."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from node.notifications import service
from node.notifications.catalog import SPECS, TemplateText, default_text
from node.notifications.errors import InvalidTemplate, TemplateNotFound
from node.notifications.rendering import render
from node.resources import Resources
from tests.node.notifications.conftest import logged, request, unique_address


class TestDefaults:
    @pytest.mark.parametrize("name", sorted(SPECS))
    def test_every_shipped_template_renders_its_sample(self, name: str) -> None:
        rendered = render(SPECS[name], default_text(name), SPECS[name].sample)
        assert rendered.subject and "{{" not in rendered.body_text and "<html" in rendered.body_html

    @pytest.mark.parametrize("name", sorted(SPECS))
    def test_every_shipped_template_renders_with_only_its_required_keys(self, name: str) -> None:
        context = {key: SPECS[name].sample[key] for key in SPECS[name].required}
        render(SPECS[name], default_text(name), context)

    async def test_the_default_is_stored_as_version_one_on_first_use(self, session: AsyncSession) -> None:
        row = await service.active_template(session, "kyc.approved")
        assert row.version >= 1 and row.active
        assert len(await service.all_templates(session)) == len(SPECS)


class TestEditing:
    async def test_an_edit_is_a_new_active_version_that_rendering_uses(self, resources: Resources) -> None:
        name = "director.verified"
        async with resources.db.unit_of_work() as session:
            before = await service.active_template(session, name)
            edited = await service.save_version(session, name, TemplateText(
                subject="Edited: {{ directorName }}", body_text="Text {{ directorName }}",
                body_html="<p>Html {{ directorName }}</p>"), uuid.uuid4())
        try:
            assert edited.version == max(v.version for v in [before, edited]) and edited.version > before.version
            to = unique_address()
            await request(resources, name, to, {"directorName": "Kamala", "businessName": "B"})
            [row] = await logged(resources, to)
            assert (row.subject, row.body_text, row.template_version) == (
                "Edited: Kamala", "Text Kamala", edited.version)
        finally:
            async with resources.db.unit_of_work() as session:
                restored = await service.activate_version(session, name, before.version)
                assert restored.active
                versions = await service.template_versions(session, name)
                assert [v.version for v in versions if v.active] == [before.version]

    async def test_preview_renders_a_draft_without_saving(self, session: AsyncSession) -> None:
        active = await service.active_template(session, "kyc.rejected")
        rendered = await service.preview(session, "kyc.rejected", subject="Draft {{ businessName }}",
                                         context={"businessName": "P"})
        assert rendered.subject == "Draft P"
        assert (await service.active_template(session, "kyc.rejected")).version == active.version

    @pytest.mark.parametrize("source", [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ businessName.__init__.__globals__ }}",
        "{% for x in range(10**9) %}{% endfor %}",
    ])
    async def test_the_sandbox_refuses_unsafe_templates(self, session: AsyncSession, source: str) -> None:
        with pytest.raises(InvalidTemplate):
            await service.preview(session, "kyc.approved", body_text=source)

    async def test_a_syntax_error_is_a_clear_validation_error(self, session: AsyncSession) -> None:
        with pytest.raises(InvalidTemplate, match="text"):
            await service.save_version(session, "kyc.approved", TemplateText("s", "{% if %}", "<p></p>"), None)

    async def test_an_unknown_template_is_not_found(self, session: AsyncSession) -> None:
        with pytest.raises(TemplateNotFound):
            await service.preview(session, "nope.nothing")
