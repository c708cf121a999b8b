"""Español (es): neutral Spanish for Spain and Latin America (tú, no vosotros/ustedes forms)."""

CATALOGUE = {
    "empty_file": "Ese archivo está vacío. Envíalo de nuevo.",
    "download_failed": "No pude descargar ese archivo. Envíalo de nuevo.",
    "file_too_big": "Ese archivo es demasiado grande. El límite es {limit_bytes:size}.",
    "not_an_image": "Eso no parece una imagen. Envía una foto (JPEG, PNG o WebP).",
    "truncated_image": "Esa foto parece cortada o dañada. Envíala de nuevo.",
    "animated_image": "Eso es una animación. Envía una foto fija.",
    "unsupported_image": "No puedo leer ese formato de imagen. Envía una foto JPEG, PNG o WebP.",
    "image_too_large": (
        "Esa foto es demasiado grande ({pixels:megapixels} megapíxeles; el límite es {limit_pixels:megapixels}). "
        "Envía una más pequeña."
    ),
    "image_too_small": "Esa foto es demasiado pequeña ({width}x{height}). Necesita al menos {min_side} píxeles por lado.",
    "no_face_note": "No encontré una cara en esa foto, así que se mueve la imagen entera.",
    "corrupt_audio": "No pude reproducir esa grabación; puede estar dañada. Grábala de nuevo.",
    "no_audio_stream": "Ese vídeo no tiene sonido. Envía un mensaje de voz o un archivo de audio.",
    "not_audio": "Eso es una imagen, no una grabación. Envía un mensaje de voz o un archivo de audio.",
    "silent_audio": "Esa grabación está en silencio. Di algo y envíala de nuevo.",
    "audio_too_long": "Esa grabación dura {seconds:duration}; el límite es {limit_seconds:duration}. Envía una más corta.",
    "audio_too_short": "Esa grabación es demasiado corta ({seconds:.1f} s). Necesita al menos {min_seconds:g} segundos de sonido.",
    "empty_text": "Dime qué decir, p. ej. /animate ¡Hola!",
    "speech_failed": "La síntesis de voz no funciona ahora mismo. Envía un mensaje de voz o inténtalo más tarde.",
    "text_too_long": "Ese texto tiene {length} caracteres; el límite es {limit}. Acórtalo, por favor.",
    "unknown_voice": "No conozco la voz '{name}'. Prueba con: {examples:list}.",
    "render_failed": "Algo salió mal al crear tu clip. Inténtalo de nuevo.",
    "out_of_memory": "El clip era demasiado grande para el renderizador, incluso en menor calidad. Prueba con una grabación más corta.",
    "cancelled": "Cancelado.",
    "encode_failed": "Hice el clip, pero no pude convertirlo en vídeo. Inténtalo de nuevo.",
    "lower_quality_note": "El renderizador se quedó sin memoria, así que este clip se hizo en menor calidad.",
    "clip_expired": "Tu clip se hizo, pero caducó antes de que pudiera publicarlo. Pídelo de nuevo.",
    "inputs_expired": "Ya no tengo la foto ni la grabación de ese clip. Envíalas de nuevo.",
    "queue_unavailable": "Ahora mismo no puedo aceptar clips nuevos. Inténtalo en unos minutos.",
    "render_timeout": (
        "Tu clip tardó más de {limit_s:duration} en hacerse, así que lo detuve. "
        "Prueba con una grabación más corta o una calidad más baja."
    ),
    "quota_concurrent": ("Ya tienes {limit} {limit:plural:clip|clips} en proceso. Inténtalo cuando termine alguno."),
    "quota_user_hourly": "Has hecho {limit} clips en la última hora. Inténtalo de nuevo en {retry_after_s:duration}.",
    "quota_server_hourly": "Este chat ha hecho {limit} clips en la última hora. Inténtalo de nuevo en {retry_after_s:duration}.",
    "clip_too_big": "El clip quedó demasiado grande para enviarlo aquí (el límite es {limit_bytes:size}). Prueba con una grabación más corta.",
    "done": "listo.",
    "already_asked": "Pediste este mismo clip hace un momento: ya está en camino (mira arriba).",
    "already_asked_link": "Pediste este mismo clip hace un momento: ya está en camino: {link}",
    "clip_refused": "Tu clip está listo, pero este chat lo rechazó, seguramente por ser demasiado grande. Prueba con una grabación más corta.",
    "clip_again": "Ya habías pedido este mismo clip, así que aquí lo tienes otra vez.",
    "unexpected": "Algo falló por mi parte. Inténtalo de nuevo en un momento.",
    "delivery_failed": "Tu clip está listo, pero no pude publicarlo aquí. Inténtalo más tarde.",
    "not_yours": "Solo quien pidió este clip, o un moderador de este chat, puede hacer eso.",
    "not_this_message": "Ese botón no pertenece a este mensaje.",
    "cancelling": "Cancelando tu clip…",
    "already_finished": "Ese clip ya terminó.",
    "job_gone": "Ese clip es demasiado antiguo; haz una petición nueva.",
    "again_started": "Voy: viene una nueva toma.",
    "deleted": "Eliminado.",
    "button_again": "Otra vez",
    "button_delete": "Eliminar",
    "button_cancel": "Cancelar",
    "started": "¡Entendido! Mostraré el progreso en el canal y publicaré el clip allí.",
    "settings_saved": "Guardado.",
    "unknown_language": "Todavía no hablo '{name}'. Idiomas: {languages:list}.",
    "queued_next": "En cola: eres el siguiente.",
    "queued": "En cola: {position:ordinal} en la fila.",
    "stage_preparing": "Preparando",
    "stage_rendering": "Renderizando",
    "stage_encoding": "Codificando",
    "progress_eta": "quedan unos {eta_s:duration}",
    "telegram_start": (
        "¡Hola! Envíame una foto de una cara y luego respóndela con un mensaje de voz, y haré que la cara "
        "hable. O envía una foto con el pie /animate y una frase. En /help tienes los detalles."
    ),
    "telegram_animate_help": (
        "Envía una foto con el pie /animate y lo que debe decir, o responde a una foto con "
        "/animate y tu texto, p. ej. /animate ¡Hola!"
    ),
    "telegram_checking": "¡Entendido! Revisando tu foto y tu sonido…",
    "telegram_reply_to_a_photo": "Responde a una foto con tu grabación y haré que esa cara hable.",
    "telegram_photo_hint": "¡Buena foto! Ahora respóndela con un mensaje de voz, o con /animate y una frase.",
    "telegram_nothing_to_cancel": "No tienes ningún clip en proceso aquí.",
    "telegram_settings_admins_only": "Solo los administradores del chat pueden cambiar los ajustes aquí.",
    "telegram_settings_usage": (
        "Uso: /settings voice NOMBRE, /settings quality fast|standard|high, /settings captions on|off "
        "(el pie de una foto es una petición), /settings clipcaption on|off (el texto hablado bajo el clip), "
        "/settings language {languages} (auto: el idioma de cada persona)"
    ),
    "telegram_voices_header": "Voces para el texto de /animate (un administrador fija la predeterminada con /settings voice NOMBRE):",
    "telegram_help": (
        "Cómo usarme:\n"
        "• Responde a una foto con un mensaje de voz, un archivo de audio o un vídeo: la cara lo dice o lo canta.\n"
        "• Envía una foto con el pie /animate y una frase, o responde a una foto con /animate TEXTO.\n"
        "• También sirven las fotos enviadas como archivo.\n\n"
        "Límites: grabaciones de hasta {max_audio_seconds:duration}, texto de hasta {max_text_chars} caracteres, "
        "archivos de hasta {max_download_bytes:size}.\n\n"
        "Comandos: /voices lista las voces, /status muestra tu lugar en la fila, /cancel detiene tu clip; "
        "administradores: /settings.\n\n"
        "En grupos: con el modo privado activado solo veo comandos y respuestas a mis mensajes, así que "
        "una respuesta de voz a la foto de otra persona se me escapa. Usa /animate, hazme administrador del "
        "grupo o pide a mi dueño que desactive la privacidad (@BotFather → /setprivacy → Disable, y vuelve a añadirme)."
    ),
    "telegram_settings": (
        "Ajustes aquí: voz {voice}, calidad {quality}, pies de foto {caption_requests:onoff}, "
        "texto bajo el clip {clip_captions:onoff}, idioma {language}."
    ),
    "language_auto": "automático",
    "word_on": "sí",
    "word_off": "no",
    "command_animate": "Anima una foto con una frase",
    "command_help": "Cómo usarme",
    "command_voices": "Voces para /animate",
    "command_status": "Tu lugar en la fila",
    "command_cancel": "Detén tu clip",
    "command_settings": "Ajustes del chat (administradores)",
    "not_a_recording": "Eso no es una grabación. Adjunta un mensaje de voz o un archivo de audio (MP3, OGG, WAV o M4A).",
    "discord_voice_or_text": "Dame una grabación (voice) o una frase (text), no las dos.",
    "discord_need_voice_or_text": "Añade una grabación (voice) o una frase (text) para que la cara la diga.",
    "discord_no_photo": "Ese mensaje no tiene foto. Usa Aplicaciones → Animar en un mensaje con una imagen.",
    "discord_modal_title": "Anima esta foto",
    "discord_modal_text_label": "¿Qué debe decir?",
    "discord_modal_voice_label": "Voz (opcional, p. ej. es-female)",
    "discord_cant_post_here": "No puedo publicar clips en este canal. Pide a un administrador que me deje enviar mensajes y archivos aquí.",
    "discord_context_menu": "Animar",
    "discord_status": "Clip para {who}: {line}",
    "discord_clip_caption": "¡Aquí lo tienes, {who}!",
    "channel_not_allowed": "En este servidor solo hago clips en {channels:list}.",
    "discord_settings": "Ajustes de este servidor: canales: {channels}; voz: {voice}; calidad: {quality}; {limit}; idioma: {language}.",
    "discord_every_channel": "todos los canales",
    "discord_per_hour": "{per_hour} clips por miembro y hora",
    "discord_default_per_hour": "el límite por miembro del propio bot",
    "discord_help": (
        "Cómo usarme:\n"
        "• /{animate_command} con una foto, más una grabación (voice) o una frase (text).\n"
        "• Clic derecho en un mensaje con foto → Aplicaciones → Animar, y escribe lo que debe decir.\n"
        "• Responde a un mensaje con foto con un mensaje de voz o un archivo de audio.\n\n"
        "Límites: grabaciones de hasta {max_audio_seconds:duration}, texto de hasta {max_text_chars} caracteres. "
        "El clip llega al mismo canal con los botones Otra vez y Eliminar; Cancelar detiene un clip en proceso. "
        "Administradores del servidor: /{settings_command}."
    ),
    "discord_help_mention": (
        "Cómo usarme:\n"
        "• /{animate_command} con una foto, más una grabación (voice) o una frase (text).\n"
        "• Clic derecho en un mensaje con foto → Aplicaciones → Animar, y escribe lo que debe decir.\n"
        "• Responde a un mensaje con foto con un mensaje de voz o un archivo de audio, y mencióname "
        "en la respuesta (no puedo leer otros mensajes aquí).\n\n"
        "Límites: grabaciones de hasta {max_audio_seconds:duration}, texto de hasta {max_text_chars} caracteres. "
        "El clip llega al mismo canal con los botones Otra vez y Eliminar; Cancelar detiene un clip en proceso. "
        "Administradores del servidor: /{settings_command}."
    ),
    "describe_animate": "Haz que la cara de una foto diga una grabación o una frase",
    "describe_photo": "Una foto con una cara (JPEG, PNG o WebP)",
    "describe_voice": "Un mensaje de voz o archivo de audio que la cara dirá o cantará",
    "describe_text": "Una frase para decir en lugar de una grabación",
    "describe_voice_name": "Voz de síntesis, p. ej. es-female",
    "describe_quality": "fast (384 px), standard (512 px) o high (704 px)",
    "describe_motion": "Cuánto se mueve la cabeza",
    "describe_help": "Cómo usar el bot de avatares",
    "describe_settings": "Ajustes del bot de avatares en este servidor (administradores)",
    "describe_settings_show": "Muestra los ajustes del bot en este servidor",
    "describe_settings_channels": "Permite el bot en un canal o quítalo; sin canales: en todos",
    "describe_settings_channel": "El canal que permitir o quitar",
    "describe_settings_allow": "True para permitir el bot ahí, False para quitar el canal",
    "describe_settings_defaults": "Voz y calidad predeterminadas en este servidor",
    "describe_settings_user_limit": "Clips por hora que puede pedir cada miembro en este servidor",
    "describe_settings_per_hour": "Clips por miembro y hora (0: el límite del propio bot)",
    "describe_settings_language": "El idioma del bot en este servidor (auto: el de cada miembro)",
    "describe_language": "Un código de idioma como en, zh-Hans o es; auto para el de cada miembro",
    "name_animate": "animar",
    "name_help": "ayuda",
    "name_settings": "ajustes-avatar",
}

# The local web page (avatarbot.web): its labels, by the page's own names after `web_`.
CATALOGUE.update(
    {
        "web_title": "Da vida a una foto",
        "web_intro": "Elige la foto de una cara y luego graba, sube o escribe lo que debe decir.",
        "web_photo": "Foto",
        "web_use_example": "Usar la foto de ejemplo",
        "web_sound": "¿Qué debe decir?",
        "web_tab_text": "Escribir",
        "web_tab_record": "Grabar",
        "web_tab_upload": "Subir una canción o grabación",
        "web_text_placeholder": "¡Hola! Soy una foto y ahora puedo hablar.",
        "web_voice": "Voz",
        "web_record_start": "Empezar a grabar",
        "web_record_stop": "Parar",
        "web_recording": "Grabando…",
        "web_recorded": "Grabado. Escúchalo o vuelve a grabar.",
        "web_no_microphone": "El navegador no me dejó usar el micrófono. Sube una grabación o escribe una frase.",
        "web_quality": "Calidad",
        "web_motion": "Movimiento de la cabeza",
        "web_motion_still": "quieta",
        "web_motion_lively": "animada",
        "web_submit": "Animar",
        "web_sending": "Enviando…",
        "web_download": "Descargar",
        "web_done": "¡Aquí lo tienes!",
        "web_finishing": "Terminando tu clip…",
        "web_need_photo": "Primero elige una foto.",
        "web_need_sound": "Graba algo, elige una grabación o escribe una frase para que la cara la diga.",
        "web_password": "Contraseña",
        "web_sign_in": "Entrar",
        "web_wrong_password": "Esa contraseña no es correcta.",
        "web_sign_in_first": "Primero entra con la contraseña de la página.",
        "web_offline": "No consigo conectar con el servidor. ¿Sigue en marcha `avatarbot web`?",
        "web_quality_fast": "Rápida (384 px)",
        "web_quality_standard": "Estándar (512 px)",
        "web_quality_high": "Alta (704 px)",
    }
)
