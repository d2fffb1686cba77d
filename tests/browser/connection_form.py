"""Airflow 3.3's connection form (Admin > Connections), driven through Selenium as a person uses it.

One page object: open Add or Edit, pick the connection type, type into a field, pick from a chooser, read
what each field shows (label, hint, value), save, click Test, take a screenshot of the whole form. Element
names come from Airflow's UI (``ui/src/pages/Connections/*.tsx``, ``components/FlexibleForm/*.tsx``):
standard fields are ``input[name=host]`` ..., extra fields ``[name=element_<field>]``, choosers are
react-select boxes with the id ``element_<field>``, each field sits in a Chakra ``Field.Root`` with its label
and helper text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

#: How long the UI may take to show what was asked (a modal, the options of a chooser, a saved row).
WAIT_SECONDS = 20

#: A field's label, hint and shown value, read from its Chakra Field.Root (one script, one round trip).
_READ_FIELD = """
const root = arguments[0].closest('[data-scope=field][data-part=root]');
const label = root.querySelector('[data-part=label]');
const hint = root.querySelector('[data-part=helper-text]');
return [label ? label.innerText.trim() : '', hint ? hint.innerText.trim() : ''];
"""


@dataclass(frozen=True)
class ShownField:
    """What the form shows for one field."""

    label: str
    hint: str
    value: str


class ConnectionForm:
    """The Connections page of one Airflow UI at ``base_url`` in ``driver``."""

    def __init__(self, driver: WebDriver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url
        self.wait = WebDriverWait(driver, WAIT_SECONDS)

    # -- opening ----------------------------------------------------------------------------------------------
    def open_list(self) -> None:
        self.driver.get(f"{self.base_url}/connections")
        self.wait.until(lambda d: self._button("Add Connection"))

    def open_add(self) -> WebElement:
        self.open_list()
        self._button("Add Connection").click()
        return self.dialog()

    def open_edit(self, conn_id: str) -> WebElement:
        self.open_list()
        self._row_button(conn_id, "Edit Connection").click()
        dialog = self.dialog()
        self.wait.until(lambda d: self.standard_value("connection_id") == conn_id)
        return dialog

    def dialog(self) -> WebElement:
        return self.wait.until(
            expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, "[role=dialog]"))
        )

    def close(self) -> None:
        self.dialog().find_element(By.CSS_SELECTOR, "[id$=':close']").click()
        self.wait.until(
            expected_conditions.invisibility_of_element_located((By.CSS_SELECTOR, "[role=dialog]"))
        )

    def open_section(self, name: str) -> None:
        """Open the accordion section ``Standard Fields``/``Extra Fields``/``Extra Fields JSON`` (one is open
        at a time); nothing when it is open already."""
        key = {"Standard Fields": "standardFields", "Extra Fields JSON": "extraJson"}.get(name, name)
        trigger = self.dialog().find_element(By.CSS_SELECTOR, f"[id$='trigger:{key}']")
        if trigger.get_attribute("aria-expanded") != "true":
            trigger.click()
        self.wait.until(lambda d: trigger.get_attribute("aria-expanded") == "true")

    # -- the connection type ----------------------------------------------------------------------------------
    def offered_types(self, typed: str) -> list[str]:
        """The connection types the type chooser offers for ``typed``."""
        box = self._type_box()
        box.send_keys(typed)
        names: list[str] = self.wait.until(lambda d: self._option_texts())
        box.send_keys(Keys.BACKSPACE * len(typed))  # not Escape: that closes the whole dialog
        return names

    def choose_type(self, hook_name: str) -> None:
        box = self._type_box()
        box.send_keys(hook_name)
        self.wait.until(lambda d: hook_name in self._option_texts())
        box.send_keys(Keys.ENTER)
        self.wait.until(lambda d: self._section_triggers())

    def _option_texts(self) -> list[str]:
        """The texts of the options a chooser offers now (none while its menu re-renders)."""
        try:
            return [option.text for option in self.driver.find_elements(By.CSS_SELECTOR, "[role=option]")]
        except StaleElementReferenceException:
            return []

    def _type_box(self) -> WebElement:
        boxes = self.dialog().find_elements(By.CSS_SELECTOR, "input[role=combobox]")
        return boxes[0]  # the first chooser of the form is the connection type

    # -- fields -----------------------------------------------------------------------------------------------
    def type_standard(self, name: str, value: str) -> None:
        self._replace_text(self.dialog().find_element(By.NAME, name), value)

    def standard_value(self, name: str) -> str:
        return self.dialog().find_element(By.NAME, name).get_attribute("value") or ""

    def standard_placeholder(self, name: str) -> str:
        return self.dialog().find_element(By.NAME, name).get_attribute("placeholder") or ""

    def standard_label(self, name: str) -> str:
        label, _ = self.driver.execute_script(_READ_FIELD, self.dialog().find_element(By.NAME, name))
        return str(label)

    def type_extra(self, name: str, value: str) -> None:
        self._replace_text(self.dialog().find_element(By.NAME, f"element_{name}"), value)

    def choose_extra(self, name: str, value: str) -> None:
        """Pick ``value`` in the chooser of the extra field ``name`` (typed, then Enter, as a person would)."""
        box = (
            self.dialog()
            .find_element(By.ID, f"element_{name}")
            .find_element(By.CSS_SELECTOR, "input[role=combobox]")
        )
        box.click()
        box.send_keys(value)
        self.wait.until(lambda d: value in self._option_texts())
        box.send_keys(Keys.ENTER)
        self.wait.until(lambda d: self.extra_field(name).value == value)

    def extra_field(self, name: str) -> ShownField:
        """Label, hint and the value shown: a chooser's chosen text, an input's text."""
        chooser = self.dialog().find_elements(By.ID, f"element_{name}")
        if chooser and chooser[0].tag_name == "div":
            anchor = chooser[0]
            value = anchor.text.strip()  # the chosen option's text, as drawn
        else:
            anchor = self.dialog().find_element(By.NAME, f"element_{name}")
            value = anchor.get_attribute("value") or ""
        label, hint = self.driver.execute_script(_READ_FIELD, anchor)
        return ShownField(label=str(label), hint=str(hint), value=value)

    def extra_field_names(self) -> list[str]:
        """The extra fields the form shows, in order."""
        names = []
        for element in self.dialog().find_elements(By.CSS_SELECTOR, "[name^=element_]"):
            name = (element.get_attribute("name") or "")[len("element_") :]
            if name and name not in names:
                names.append(name)
        return names

    def input_kind(self, name: str) -> str:
        """``chooser``, ``number``, ``text`` or ``textarea``: what a person types into."""
        element = self.dialog().find_element(By.NAME, f"element_{name}")
        if element.get_attribute("type") == "hidden":
            return "chooser"
        if element.tag_name == "textarea":
            return "textarea"
        return "number" if element.get_attribute("role") == "spinbutton" else "text"

    def visible_texts(self) -> list[str]:
        """What the form shows in its fields: every standard input's value but the client secret's, and the
        label, hint and value of every extra field (Airflow's own helper texts are not the provider's)."""
        dialog = self.dialog()
        texts = []
        for element in dialog.find_elements(By.CSS_SELECTOR, "input[name], textarea[name]"):
            name = element.get_attribute("name") or ""
            if name == "password" or name.startswith("element_") or element.get_attribute("type") == "hidden":
                continue
            texts.append(element.get_attribute("value") or "")
        for name in self.extra_field_names():
            shown = self.extra_field(name)
            texts += [shown.label, shown.hint, shown.value]
        return texts

    def extra_json(self) -> str:
        """The text of the "Extra Fields JSON" section: the extras as the form will save them."""
        self.open_section("Extra Fields JSON")
        section = self.dialog().find_element(By.CSS_SELECTOR, "[id$='content:extraJson']")
        return str(section.text)

    def _replace_text(self, element: WebElement, value: str) -> None:
        element.click()
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(value)
        element.send_keys(Keys.TAB)  # react-hook-form validates on blur

    def _section_triggers(self) -> list[WebElement]:
        return self.dialog().find_elements(By.CSS_SELECTOR, "[id$='trigger:Extra Fields']")

    # -- actions ----------------------------------------------------------------------------------------------
    def save(self) -> None:
        button = self._button("Save", within=self.dialog())
        self.wait.until(lambda d: button.is_enabled())
        button.click()
        self.wait.until(
            expected_conditions.invisibility_of_element_located((By.CSS_SELECTOR, "[role=dialog]"))
        )

    def click_test(self, conn_id: str) -> str:
        """Click the Test button of the row ``conn_id``; the text of the answer the UI pops up."""
        self.open_list()
        self._row_button(conn_id, "Test Connection").click()
        toast = self.wait.until(
            lambda d: [
                t for t in d.find_elements(By.CSS_SELECTOR, "[data-scope=toast][data-part=root]") if t.text
            ]
        )
        return toast[0].text

    def screenshot(self, path: Path) -> Path:
        """The whole form in one PNG: the window grown to the form's height first (a modal does not scroll
        the page, so a page screenshot would cut it)."""
        height = int(
            self.driver.execute_script("return document.querySelector('[role=dialog]').scrollHeight")
        )
        width = int(self.driver.get_window_size()["width"])
        self.driver.set_window_size(width, max(height + 200, 900))
        self.driver.execute_script(
            "document.activeElement && document.activeElement.blur();"  # no focus ring or tooltip in the picture
            "const box = document.querySelector('[role=dialog]').parentElement; if (box) box.scrollTop = 0;"
        )
        time.sleep(0.3)  # let the layout settle at the new size
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path

    # -- finding ----------------------------------------------------------------------------------------------
    def _button(self, text: str, within: Any = None) -> WebElement | None:
        scope = within or self.driver
        try:
            for button in scope.find_elements(By.CSS_SELECTOR, "button"):
                if button.text.strip() == text:
                    return button
        except StaleElementReferenceException:
            return None
        return None

    def _row_button(self, conn_id: str, label: str) -> WebElement:
        def find(driver: WebDriver) -> WebElement | None:
            for row in driver.find_elements(By.CSS_SELECTOR, "tbody tr"):
                cells = row.find_elements(By.CSS_SELECTOR, "td")
                if any(cell.text.strip() == conn_id for cell in cells):
                    try:
                        return row.find_element(By.CSS_SELECTOR, f"button[aria-label='{label}']")
                    except NoSuchElementException:
                        return None
            return None

        return self.wait.until(find)
