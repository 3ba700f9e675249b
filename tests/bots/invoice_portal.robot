*** Settings ***
Documentation       Submits an invoice in the invoice portal: the bot of the UI drift scenario.
...                 Run it with `-v PORTAL:http://127.0.0.1:PORT/v1` (the portal's version to use).
Library             SeleniumLibrary    timeout=3s    implicit_wait=0s
Suite Setup         Open Portal
Suite Teardown      Close All Browsers

*** Variables ***
${PORTAL}               http://127.0.0.1:8080/v1
${CHROMIUM}             /usr/bin/chromium
${CHROMEDRIVER}         /usr/bin/chromedriver
${SUBMIT}               id:btnSubmit
${SUBMIT_FALLBACK}      xpath://button[normalize-space()='Submit invoice']

*** Tasks ***
Submit Invoice
    [Tags]    screen:invoice
    Sign In
    Wait Until Page Contains Element    id:invoice-form
    Input Text    id:supplier    Acme Paper
    Input Text    id:number    INV-2001
    Input Text    css:#amount    120.50
    Click Submit
    Wait Until Element Contains    id:result    INV-2001 submitted

*** Keywords ***
Open Portal
    Open Browser    ${PORTAL}/login.html    chrome
    ...    options=binary_location="${CHROMIUM}";add_argument("--headless=new");add_argument("--no-sandbox");add_argument("--disable-dev-shm-usage");add_argument("--window-size=1280,800");add_argument("--hide-scrollbars")
    ...    service=executable_path="${CHROMEDRIVER}"

Sign In
    [Tags]    screen:login
    Wait Until Element Is Visible    id:user
    Input Text    id:user    invoice-bot
    Input Password    id:password    not-a-secret
    Click Button    id:btnLogin

Click Submit
    [Documentation]    The submit button by its id; by its text when the id is gone.
    ${clicked}=    Run Keyword And Return Status    Click Button    ${SUBMIT}
    IF    not ${clicked}    Click Button    ${SUBMIT_FALLBACK}
