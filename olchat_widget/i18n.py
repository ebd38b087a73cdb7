"""Interface texts in Russian (the operators' language) and English.

Labels of the product's controls are fixed by PRODUCT.md; tests and people
find controls by them, so they live in one place.
"""
from __future__ import annotations

from flask import g, current_app

TEXTS: dict[str, dict[str, str]] = {
    # Controls (PRODUCT.md)
    "show_widget": {"ru": "Отобразить виджет", "en": "Show widget"},
    "create_chat": {"ru": "Создать чат", "en": "Create chat"},
    "open_chat": {"ru": "Открыть чат", "en": "Open chat"},
    "publish_to_chat": {"ru": "Публиковать в чат", "en": "Publish to chat"},
    "err_openline_title": {"ru": "Чат Открытых линий недоступен", "en": "Open Lines chat unavailable"},
    "err_openline_body": {"ru": "Битрикс24 не смог найти или начать чат Открытых линий с клиентом. Повторите позже.",
                          "en": "Bitrix24 could not find or start the Open Lines chat with the client. Try again later."},
    "b24_chat_opened": {"ru": "Чат Открытых линий открывается в мессенджере Битрикс24", "en": "The Open Lines chat opens in the Bitrix24 messenger"},
    "write_chat": {"ru": "Написать в чат", "en": "Write to chat"},
    "send_message": {"ru": "Отправить сообщение", "en": "Send message"},
    "open_history": {"ru": "Открыть историю чата", "en": "Open chat history"},
    "open_app": {"ru": "Открыть приложение", "en": "Open application"},
    "refresh": {"ru": "Обновить данные виджета", "en": "Refresh widget data"},
    "older": {"ru": "Показать более ранние", "en": "Show older"},
    "hide": {"ru": "Скрыть", "en": "Hide"},
    "cancel": {"ru": "Отмена", "en": "Cancel"},
    "retry": {"ru": "Повторить", "en": "Try again"},
    # Widget
    "title": {"ru": "WhatsApp — статусы и чаты", "en": "WhatsApp — statuses and chats"},
    "hidden_hint": {
        "ru": "Номера клиента проверяются в WhatsApp только по нажатию — так меньше риск блокировки линии.",
        "en": "Client numbers are checked in WhatsApp only on demand, which lowers the risk of a line ban.",
    },
    "line": {"ru": "Линия", "en": "Line"},
    "no_lines": {"ru": "Линии WhatsApp не подключены", "en": "No WhatsApp lines are connected"},
    "no_lines_hint": {
        "ru": "Администратор портала подключает линии на странице настроек приложения.",
        "en": "The portal administrator connects lines on the app's settings page.",
    },
    "no_lines_admin_hint": {
        "ru": "Подключите сервер WhatsApp (WAHA) и выберите линии в настройках приложения: откройте приложение из меню Битрикс24, раздел «Шлюз WhatsApp (WAHA)».",
        "en": "Connect a WhatsApp (WAHA) server and choose lines in the app settings: open the app from the Bitrix24 menu, section «WhatsApp gateway (WAHA)».",
    },
    "line_cannot_send": {"ru": "линия не может отправлять", "en": "this line cannot send"},
    # A line that is not WORKING (needs a QR scan, stopped) cannot read its chats either.
    "line_cannot_read": {"ru": "линия не подключена — история чата недоступна", "en": "the line is not connected; the chat history is unavailable"},
    "phones": {"ru": "Телефоны клиента", "en": "Client phones"},
    "no_phones": {"ru": "В карточке и связанных контактах нет телефонов", "en": "No phones in this card or its contacts"},
    "new_card": {"ru": "Сохраните карточку, чтобы увидеть телефоны клиента", "en": "Save the card to see the client's phones"},
    "more_phones": {"ru": "Показаны первые {n} номеров из {total}", "en": "Showing the first {n} of {total} numbers"},
    "invalid_phones": {"ru": "Не распознаны как телефон", "en": "Not recognised as phone numbers"},
    "bad_empty": {"ru": "пусто", "en": "empty"},
    "bad_not_a_number": {"ru": "не номер телефона", "en": "not a phone number"},
    "bad_too_short": {"ru": "слишком короткий", "en": "too short"},
    "bad_too_long": {"ru": "слишком длинный", "en": "too long"},
    "bad_invalid_country_code": {"ru": "неизвестный код страны", "en": "unknown country code"},
    "bad_invalid": {"ru": "такого номера не бывает", "en": "not a valid number"},
    "fix_in_card": {"ru": "исправьте в карточке", "en": "correct it in the card"},
    "wa_yes": {"ru": "есть WhatsApp", "en": "has WhatsApp"},
    "wa_no": {"ru": "нет WhatsApp", "en": "no WhatsApp"},
    "wa_checking": {"ru": "проверяем…", "en": "checking…"},
    # When a number's status was last asked of WhatsApp (the refresh re-checks only old answers).
    "checked_just_now": {"ru": "проверено только что", "en": "checked just now"},
    "checked_min_ago": {"ru": "проверено {n} мин назад", "en": "checked {n} min ago"},
    "checked_h_ago": {"ru": "проверено {n} ч назад", "en": "checked {n} h ago"},
    "checked_d_ago": {"ru": "проверено {n} дн. назад", "en": "checked {n} d ago"},
    "wa_unknown": {"ru": "неизвестно", "en": "unknown"},
    "wa_unknown_gateway": {"ru": "неизвестно (шлюз недоступен)", "en": "unknown (gateway unavailable)"},
    "wa_unknown_line": {"ru": "неизвестно (линия не подключена)", "en": "unknown (line not connected)"},
    "wa_unknown_budget": {"ru": "не проверен: лимит проверок", "en": "not checked: check limit reached"},
    "wa_unknown_restricted": {"ru": "неизвестно (WhatsApp ограничил линию)", "en": "unknown (WhatsApp restricted the line)"},
    "wa_unknown_noline": {"ru": "неизвестно (нет рабочей линии)", "en": "unknown (no working line)"},
    "region_unknown": {"ru": "регион неизвестен", "en": "region unknown"},
    "operator_by_plan": {"ru": "оператор по плану нумерации", "en": "operator per numbering plan"},
    "time_unknown": {"ru": "время клиента неизвестно", "en": "client time unknown"},
    "light_green": {"ru": "можно писать и звонить", "en": "fine to write or call"},
    "light_orange": {"ru": "нежелательное время", "en": "undesirable time"},
    "light_red": {"ru": "нельзя беспокоить", "en": "do not disturb"},
    "light_unknown": {"ru": "время неизвестно", "en": "time unknown"},
    "owner_lead": {"ru": "лид", "en": "lead"},
    "owner_contact": {"ru": "контакт", "en": "contact"},
    "owner_company": {"ru": "компания", "en": "company"},
    "owner_deal": {"ru": "сделка", "en": "deal"},
    "owner_item": {"ru": "элемент", "en": "item"},
    "ext": {"ru": "доб.", "en": "ext."},
    "updated_at": {"ru": "Данные на {time}", "en": "Data as of {time}"},
    "edit_mode": {"ru": "Вы в режиме редактирования", "en": "You are in edit mode"},
    # Send form
    "message_placeholder": {"ru": "Текст сообщения", "en": "Message text"},
    "sending": {"ru": "Отправляем…", "en": "Sending…"},
    "sent": {"ru": "Сообщение отправлено", "en": "Message sent"},
    "send_failed": {"ru": "Сообщение не отправлено", "en": "Message not sent"},
    "send_unknown": {
        "ru": "Шлюз не ответил вовремя — сообщение могло уйти. Проверьте историю чата перед повтором.",
        "en": "The gateway did not answer in time; the message may have gone out. Check the chat history before retrying.",
    },
    "send_gateway_down": {
        "ru": "Шлюз WhatsApp недоступен. Текст сохранён — повторите отправку через минуту.",
        "en": "The WhatsApp gateway is unavailable. Your text is kept; try sending again in a minute.",
    },
    "empty_message": {"ru": "Введите текст сообщения", "en": "Type a message"},
    "too_long": {"ru": "Сообщение длиннее {n} символов", "en": "The message is longer than {n} characters"},
    "red_zone_confirm": {
        "ru": "У клиента сейчас {time} — нерабочее время. Всё равно отправить?",
        "en": "It is {time} for the client, outside working hours. Send anyway?",
    },
    "send_anyway": {"ru": "Всё равно отправить", "en": "Send anyway"},
    "ack_PENDING": {"ru": "отправляется", "en": "pending"},
    "ack_SERVER": {"ru": "отправлено", "en": "sent"},
    "ack_DEVICE": {"ru": "доставлено", "en": "delivered"},
    "ack_READ": {"ru": "прочитано", "en": "read"},
    "ack_PLAYED": {"ru": "прослушано", "en": "played"},
    "ack_ERROR": {"ru": "ошибка доставки", "en": "delivery error"},
    "status_sent": {"ru": "отправлено", "en": "sent"},
    "status_failed": {"ru": "не отправлено", "en": "failed"},
    "status_unknown": {"ru": "статус неизвестен", "en": "status unknown"},
    "status_pending": {"ru": "отправляется", "en": "sending"},
    # Files and voice in the send form (issue 13)
    "attach_file": {"ru": "Прикрепить файл", "en": "Attach a file"},
    "attach_hint": {"ru": "Фото и видео — до {photo} МБ, документы — до {doc} МБ. Программы и скрипты (exe, bat, js, apk…) не отправляются. Файл можно перетащить на форму.",
                    "en": "Photos and video up to {photo} MB, documents up to {doc} MB. Programs and scripts (exe, bat, js, apk…) are not sent. You can drop a file onto the form."},
    "attached": {"ru": "Файл", "en": "File"},
    "remove_file": {"ru": "Убрать файл", "en": "Remove the file"},
    "upload_progress": {"ru": "Загрузка файла", "en": "Uploading the file"},
    "file_missing": {"ru": "Выберите файл ещё раз: он не дошёл до сервера", "en": "Choose the file again: it did not reach the server"},
    "file_empty": {"ru": "Файл пустой", "en": "The file is empty"},
    "file_executable": {"ru": "Программы и скрипты не отправляются: WhatsApp и клиенты считают их опасными", "en": "Programs and scripts are not sent: WhatsApp and clients treat them as dangerous"},
    "file_too_large_photo": {"ru": "Фото и видео — не больше {n} МБ (ограничение WhatsApp)", "en": "Photos and video: {n} MB at most (WhatsApp's limit)"},
    "file_too_large_doc": {"ru": "Документ — не больше {n} МБ (ограничение WhatsApp)", "en": "Documents: {n} MB at most (WhatsApp's limit)"},
    "file_not_sent": {"ru": "Файл не отправлен", "en": "The file was not sent"},
    "file_gateway_too_large": {"ru": "Шлюз не принял файл такого размера", "en": "The gateway did not accept a file this large"},
    "file_send_unknown": {"ru": "Шлюз не ответил вовремя — файл мог уйти. Проверьте историю чата, прежде чем отправлять его снова.",
                          "en": "The gateway did not answer in time; the file may have gone out. Check the chat history before sending it again."},
    "voice_unreadable": {"ru": "Запись не распознана — запишите ещё раз", "en": "The recording is unreadable; record again"},
    "voice_record": {"ru": "Записать голосовое", "en": "Record a voice message"},
    "voice_stop": {"ru": "Остановить запись", "en": "Stop recording"},
    "voice_delete": {"ru": "Удалить запись", "en": "Delete the recording"},
    "voice_recording": {"ru": "Идёт запись…", "en": "Recording…"},
    "voice_ready": {"ru": "Голосовое сообщение", "en": "Voice message"},
    "voice_denied": {"ru": "Нет доступа к микрофону: разрешите его браузеру (значок в адресной строке) и повторите", "en": "No access to the microphone: allow it in the browser (the icon in the address bar) and try again"},
    "voice_no_device": {"ru": "Микрофон не найден: подключите его и повторите", "en": "No microphone found: connect one and try again"},
    "voice_unsupported": {"ru": "Этот браузер не умеет записывать голос — отправьте аудиофайл", "en": "This browser cannot record voice; attach an audio file instead"},
    "size_mb": {"ru": "{n} МБ", "en": "{n} MB"},
    "size_kb": {"ru": "{n} КБ", "en": "{n} KB"},
    "media_photo": {"ru": "Фото", "en": "Photo"},
    "media_open": {"ru": "Открыть крупно", "en": "Open large"},
    "media_voice": {"ru": "Голосовое сообщение", "en": "Voice message"},
    "media_video": {"ru": "Видео", "en": "Video"},
    "media_unavailable": {"ru": "[вложение недоступно]", "en": "[attachment unavailable]"},
    # History
    "history": {"ru": "История чата", "en": "Chat history"},
    "history_empty": {"ru": "В чате пока нет сообщений", "en": "No messages in this chat yet"},
    "media": {"ru": "[вложение]", "en": "[attachment]"},
    "you": {"ru": "Вы", "en": "You"},
    "client": {"ru": "Клиент", "en": "Client"},
    "chat_view": {"ru": "Чат с клиентом", "en": "Chat with the client"},
    # Line states
    "state_WORKING": {"ru": "работает", "en": "working"},
    "state_SCAN_QR_CODE": {"ru": "нужно отсканировать QR-код", "en": "QR code scan needed"},
    "state_STARTING": {"ru": "запускается", "en": "starting"},
    "state_STOPPED": {"ru": "остановлена", "en": "stopped"},
    "state_FAILED": {"ru": "ошибка подключения", "en": "connection failed"},
    "state_RESTRICTED": {"ru": "WhatsApp ограничил новые контакты", "en": "WhatsApp restricts new contacts"},
    # Errors (F15)
    "err_no_auth_title": {"ru": "Нет данных авторизации от Битрикс24", "en": "No authorisation data from Bitrix24"},
    "err_no_auth_body": {
        "ru": "Возможные причины: 1. У сотрудника нет прав на приложение, поэтому виджет не видит авторизацию — "
              "администратор портала проверяет права на приложение в его настройках. "
              "2. Проблемы с сервером авторизации Битрикс24 — нужно подождать и обновить виджет позже.",
        "en": "Possible causes: 1. The employee has no rights to the app, so the widget gets no authorisation — "
              "the portal administrator checks the app's access rights. "
              "2. Bitrix24's authorisation server has trouble — wait and refresh the widget later.",
    },
    "err_no_auth_cause1": {
        "ru": "У сотрудника нет прав на приложение, поэтому виджет не видит авторизацию. "
              "Администратор портала проверяет права на приложение в его настройках.",
        "en": "The employee has no rights to the app, so the widget gets no authorisation. "
              "The portal administrator checks the app's access rights.",
    },
    "err_no_auth_cause2": {
        "ru": "Проблемы с сервером авторизации Битрикс24. Нужно подождать решения от Битрикс24 и обновить виджет позже.",
        "en": "Bitrix24's authorisation server has trouble. Wait for Bitrix24 to fix it and refresh the widget later.",
    },
    "possible_causes": {"ru": "Возможные причины:", "en": "Possible causes:"},
    "err_session_title": {"ru": "Сессия виджета истекла", "en": "The widget session expired"},
    "err_session_body": {"ru": "Обновите виджет — авторизация будет получена заново.",
                         "en": "Refresh the widget to authorise again."},
    "err_forbidden_title": {"ru": "Нет доступа", "en": "Access denied"},
    "err_forbidden_body": {"ru": "У вас нет прав на эту карточку CRM или на приложение. Обратитесь к администратору портала.",
                           "en": "You have no rights to this CRM card or to the app. Ask the portal administrator."},
    "err_admin_title": {"ru": "Только для администратора", "en": "Administrators only"},
    "err_admin_body": {"ru": "Настройки приложения доступны администраторам портала.",
                       "en": "App settings are available to portal administrators."},
    "err_not_found_title": {"ru": "Карточка не найдена", "en": "Card not found"},
    "err_not_found_body": {"ru": "Карточка удалена или ещё не сохранена. Обновите страницу.",
                           "en": "The card was deleted or is not saved yet. Reload the page."},
    "err_crm_limit_title": {"ru": "Битрикс24 временно ограничил запросы", "en": "Bitrix24 is limiting requests"},
    "err_crm_limit_body": {"ru": "Портал превысил лимит запросов к REST API. Подождите несколько секунд и нажмите «Обновить данные виджета».",
                           "en": "The portal is over its REST request limit. Wait a few seconds and refresh the widget."},
    "err_crm_unavailable_title": {"ru": "Битрикс24 не отвечает", "en": "Bitrix24 does not answer"},
    "err_crm_unavailable_body": {"ru": "Не удалось получить данные карточки. Попробуйте обновить виджет через минуту.",
                                 "en": "Could not load the card. Try refreshing the widget in a minute."},
    "err_auth_expired_title": {"ru": "Авторизация Битрикс24 истекла", "en": "Bitrix24 authorisation expired"},
    "err_auth_expired_body": {"ru": "Обновите виджет, чтобы получить новую авторизацию.",
                              "en": "Refresh the widget to authorise again."},
    "err_gateway_title": {"ru": "Шлюз WhatsApp недоступен", "en": "The WhatsApp gateway is unavailable"},
    "err_gateway_body": {"ru": "Статусы номеров и история временно недоступны. Попробуйте позже; если не проходит — сообщите администратору.",
                         "en": "Number statuses and history are unavailable for now. Try later; if it persists, tell the administrator."},
    # Settings page: the portal's own WAHA server
    "gateway_connect_failed": {"ru": "Шлюз WhatsApp: не удалось подключиться к серверу",
                               "en": "WhatsApp gateway: could not connect to the server"},
    "gateway_connect_hint": {"ru": "Проверьте адрес и ключ API и что сервер WAHA запущен и доступен из интернета.",
                             "en": "Check the URL and the API key, and that the WAHA server is running and reachable from the internet."},
    "gateway_address_refused": {
        "ru": "Этот адрес не разрешён: внутренние и частные адреса (localhost, 10.x, 192.168.x, 169.254.x и т. п.) "
              "запрещены. Чтобы подключить WAHA во внутренней сети, администратор сервиса добавляет его "
              "в OLCHAT_GATEWAY_ALLOWED_HOSTS.",
        "en": "This address is not allowed: internal and private addresses (localhost, 10.x, 192.168.x, 169.254.x "
              "and the like) are refused. To connect a WAHA on an internal network, the service's operator adds it "
              "to OLCHAT_GATEWAY_ALLOWED_HOSTS.",
    },
    "gateway_url_invalid": {"ru": "Нужен адрес вида https://waha.example.com или https://waha.example.com:3000 "
                                  "(без логина, «?» и «#»)",
                            "en": "Enter a URL like https://waha.example.com or https://waha.example.com:3000 "
                                  "(no login, '?' or '#')"},
    "gateway_key_again": {"ru": "Адрес сервера изменился: введите ключ API для нового сервера",
                          "en": "The server URL changed: enter the API key for the new server"},
    "err_gateway_auth_title": {"ru": "Шлюз WhatsApp отклонил ключ доступа", "en": "The WhatsApp gateway refused the API key"},
    "err_gateway_auth_body": {"ru": "Администратору нужно проверить ключ API шлюза в настройках приложения.",
                              "en": "The administrator needs to check the gateway API key in the app settings."},
    "err_line_title": {"ru": "Линия не подключена", "en": "The line is not connected"},
    "err_line_body": {"ru": "Линия WhatsApp не работает ({state}). Выберите другую линию или попросите администратора переподключить её.",
                      "en": "The WhatsApp line is not working ({state}). Pick another line or ask the administrator to reconnect it."},
    "err_rate_title": {"ru": "WhatsApp ограничил линию", "en": "WhatsApp restricted the line"},
    "err_rate_body": {"ru": "WhatsApp временно ограничил отправку с этой линии. Подождите или выберите другую линию.",
                      "en": "WhatsApp temporarily restricts this line. Wait or pick another line."},
    "err_phone_title": {"ru": "Номер некорректен", "en": "Invalid number"},
    "err_phone_body": {"ru": "Этот номер нельзя использовать для WhatsApp. Исправьте его в карточке.",
                       "en": "This number cannot be used for WhatsApp. Correct it in the card."},
    "err_no_whatsapp_title": {"ru": "У номера нет WhatsApp", "en": "This number has no WhatsApp"},
    "err_no_whatsapp_body": {"ru": "Написать можно только на номер с WhatsApp.", "en": "You can only write to a number with WhatsApp."},
    "err_bad_request_title": {"ru": "Некорректный запрос", "en": "Bad request"},
    "err_bad_request_body": {"ru": "Обновите виджет и попробуйте ещё раз.", "en": "Refresh the widget and try again."},
    "err_bad_field": {"ru": "Некорректный запрос: поле «{field}» неверного вида или слишком длинное.",
                      "en": "Bad request: the field «{field}» has the wrong form or is too long."},
    "err_bad_json": {"ru": "Некорректный запрос: ожидался объект JSON.", "en": "Bad request: a JSON object was expected."},
    "err_too_large_title": {"ru": "Слишком большой запрос", "en": "The request is too large"},
    "err_too_large_body": {"ru": "Данные больше {size} КБ не принимаются. Сократите текст и повторите.",
                           "en": "Requests over {size} KB are refused. Shorten the text and try again."},
    "err_time_order": {"ru": "Пороги идут по порядку: «Оранжевый с» ≤ «Зелёный с» ≤ «Зелёный до» ≤ «Оранжевый до»",
                       "en": "Thresholds go in order: «Orange from» ≤ «Green from» ≤ «Green until» ≤ «Orange until»"},
    "err_number_range": {"ru": "Целое число от {low} до {high}", "en": "A whole number from {low} to {high}"},
    "err_number_range_or_empty": {"ru": "Целое число от {low} до {high} или пусто",
                                  "en": "A whole number from {low} to {high}, or empty"},
    "err_region": {"ru": "Две латинские буквы — код страны ISO, например RU",
                   "en": "Two Latin letters — the ISO country code, e.g. RU"},
    "settings_rejected": {"ru": "Настройки не сохранены: исправьте отмеченные поля",
                          "en": "Settings not saved: correct the marked fields"},
    "err_bad_time": {"ru": "Время — в виде ЧЧ:ММ, от 00:00 до 23:59", "en": "Times are HH:MM, from 00:00 to 23:59"},
    "err_db_unavailable_title": {"ru": "Сервис временно недоступен, повторите", "en": "The service is temporarily unavailable, try again"},
    "err_db_unavailable_body": {"ru": "База данных виджета не ответила вовремя. Повторите через несколько секунд.",
                                "en": "The widget's database did not answer in time. Try again in a few seconds."},
    "err_internal_title": {"ru": "Что-то пошло не так", "en": "Something went wrong"},
    "err_internal_body": {"ru": "Мы уже знаем об ошибке. Обновите виджет; если повторяется — сообщите администратору.",
                          "en": "The error was logged. Refresh the widget; if it repeats, tell the administrator."},
    "err_busy_title": {"ru": "Сообщение уже отправляется", "en": "The message is already being sent"},
    "err_busy_body": {"ru": "Дождитесь результата первой отправки.", "en": "Wait for the first send to finish."},
    "err_chat_not_found_title": {"ru": "Чат не найден", "en": "Chat not found"},
    "err_chat_not_found_body": {"ru": "Чата с этим номером на выбранной линии нет. Создайте его кнопкой «Создать чат».",
                                "en": "There is no chat with this number on this line. Create it with «Create chat»."},
    "what_to_do": {"ru": "Что делать", "en": "What to do"},
}


def locale() -> str:
    loc = getattr(g, "locale", None) or current_app.config.get("OLCHAT_LOCALE", "ru")
    return loc if loc in ("ru", "en") else "ru"


def t(key: str, **kw) -> str:
    """Return the text for ``key`` in the request's locale, formatted with ``kw``."""
    entry = TEXTS.get(key)
    if entry is None:
        return key
    text = entry.get(locale()) or entry["ru"]
    return text.format(**kw) if kw else text
