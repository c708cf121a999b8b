"""简体中文 (zh-Hans). Written for readers in mainland China, Singapore and Malaysia; Traditional
Chinese locales (zh-TW, zh-HK) read this too until a zh-Hant catalogue ships."""

CATALOGUE = {
    "empty_file": "这个文件是空的，请重新发送。",
    "download_failed": "文件没能下载下来，请重新发送。",
    "file_too_big": "文件太大了，上限是 {limit_bytes:size}。",
    "not_an_image": "这看起来不是图片。请发送一张照片（JPEG、PNG 或 WebP）。",
    "truncated_image": "这张照片好像不完整或已损坏，请重新发送。",
    "animated_image": "这是动图，请发一张静态照片。",
    "unsupported_image": "这种图片格式我读不了，请发送 JPEG、PNG 或 WebP 照片。",
    "image_too_large": "照片太大了（{pixels:megapixels} 百万像素，上限 {limit_pixels:megapixels}），请换一张小一点的。",
    "image_too_small": "照片太小了（{width}x{height}），每条边至少需要 {min_side} 像素。",
    "no_face_note": "照片里没找到人脸，所以让整张图动了起来。",
    "corrupt_audio": "这段录音无法播放，可能已损坏，请重新录一段。",
    "no_audio_stream": "这个视频没有声音。请发送语音消息或音频文件。",
    "not_audio": "这是图片，不是录音。请发送语音消息或音频文件。",
    "silent_audio": "这段录音没有声音，说点什么再发一次吧。",
    "audio_too_long": "这段录音有 {seconds:duration}，上限是 {limit_seconds:duration}，请发一段短一点的。",
    "audio_too_short": "录音太短了（{seconds:.1f} 秒），至少需要 {min_seconds:g} 秒的声音。",
    "empty_text": "告诉我要说什么，例如：/animate 你好！",
    "speech_failed": "语音合成暂时不可用。请改发语音消息，或稍后再试。",
    "text_too_long": "这段文字有 {length} 个字符，上限是 {limit}，请删短一些。",
    "unknown_voice": "没有叫「{name}」的声音。可以试试：{examples:list}。",
    "render_failed": "生成视频时出了点问题，请再试一次。",
    "out_of_memory": "这段视频太长，降低画质后也生成不了，请换一段短一点的录音。",
    "cancelled": "已取消。",
    "encode_failed": "视频已经生成，但打包成视频文件时失败了，请再试一次。",
    "lower_quality_note": "生成时显存不足，这段视频以较低画质生成。",
    "clip_expired": "视频已经生成，但在发出之前过期了，请重新请求。",
    "inputs_expired": "这段视频用的照片和录音已经过期了，请重新发送。",
    "queue_unavailable": "现在暂时无法接新任务，请过几分钟再试。",
    "render_timeout": "视频生成超过了 {limit_s:duration}，已停止。请换一段短一点的录音，或选择较低画质。",
    "quota_concurrent": "你已经有 {limit} 个视频正在生成，等其中一个完成后再试吧。",
    "quota_user_hourly": "你在过去一小时内已生成 {limit} 个视频，请 {retry_after_s:duration}后再试。",
    "quota_server_hourly": "这个群在过去一小时内已生成 {limit} 个视频，请 {retry_after_s:duration}后再试。",
    "clip_too_big": "生成的视频太大，无法在这里发送（上限 {limit_bytes:size}），请换一段短一点的录音。",
    "done": "已完成。",
    "already_asked": "你刚刚已经请求过一模一样的视频，正在处理中（见上方）。",
    "already_asked_link": "你刚刚已经请求过一模一样的视频，正在处理中：{link}",
    "clip_refused": "视频已经生成，但这个聊天拒收了，很可能是文件太大。请换一段短一点的录音。",
    "clip_again": "你之前请求过一模一样的视频，再发一次给你。",
    "unexpected": "我这边出了点问题，请稍后再试。",
    "delivery_failed": "视频已经生成，但没能发到这里，请稍后再试。",
    "not_yours": "只有发起请求的人或本聊天的管理员可以这样做。",
    "not_this_message": "这个按钮不属于这条消息。",
    "cancelling": "正在取消你的视频…",
    "already_finished": "这个视频已经完成了。",
    "job_gone": "这个视频太久了，请重新发起请求。",
    "again_started": "好的，马上再生成一版。",
    "deleted": "已删除。",
    "button_again": "再来一次",
    "button_delete": "删除",
    "button_cancel": "取消",
    "started": "收到！我会在频道里显示进度，完成后把视频发在那里。",
    "settings_saved": "已保存。",
    "unknown_language": "我还不会说「{name}」。可选语言：{languages:list}。",
    "queued_next": "排队中，下一个就是你。",
    "queued": "排队中，你排在第 {position} 位。",
    "stage_preparing": "准备中",
    "stage_rendering": "生成中",
    "stage_encoding": "编码中",
    "progress_eta": "还需约 {eta_s:duration}",
    "telegram_start": (
        "你好！先发一张人脸照片，再用语音消息回复它，我就能让照片里的人开口说话。"
        "也可以发照片并配上文字说明 /animate 和一句话。详情请看 /help。"
    ),
    "telegram_animate_help": "发照片时配上文字说明 /animate 和要说的话，或者用 /animate 加文字回复一张照片，例如：/animate 你好！",
    "telegram_checking": "收到！正在检查你的照片和声音…",
    "telegram_reply_to_a_photo": "请用你的录音回复一张照片，我就让照片里的人开口说话。",
    "telegram_photo_hint": "照片不错！现在用语音消息回复它，或者回复 /animate 加一句话。",
    "telegram_nothing_to_cancel": "你在这里没有正在生成的视频。",
    "telegram_settings_admins_only": "只有群管理员可以修改这里的设置。",
    "telegram_settings_usage": (
        "用法：/settings voice 声音名，/settings quality fast|standard|high，/settings captions on|off"
        "（照片的普通说明文字也算请求），/settings clipcaption on|off（在视频下方显示说的话），"
        "/settings language {languages}（auto：跟随每个人自己的语言）"
    ),
    "telegram_voices_header": "/animate 文字可用的声音（群管理员可用 /settings voice 声音名 设置默认值）：",
    "telegram_help": (
        "使用方法：\n"
        "• 用语音消息、音频文件或视频回复一张照片，照片里的人就会说出或唱出来。\n"
        "• 发照片时配上文字说明 /animate 和一句话，或者用 /animate 文字 回复一张照片。\n"
        "• 以文件形式发送的照片也可以。\n\n"
        "限制：录音最长 {max_audio_seconds:duration}，文字最多 {max_text_chars} 个字符，"
        "文件最大 {max_download_bytes:size}。\n\n"
        "命令：/voices 查看声音，/status 查看排队位置，/cancel 停止生成；管理员：/settings。\n\n"
        "在群里：开启隐私模式时，我只能看到命令和对我消息的回复，所以别人照片下的语音回复我看不到。"
        "请使用 /animate，把我设为群管理员，或者请机器人主人关闭隐私模式"
        "（@BotFather → /setprivacy → Disable，然后重新把我加进群）。"
    ),
    "telegram_settings": (
        "当前设置：声音 {voice}，画质 {quality}，普通说明文字 {caption_requests:onoff}，"
        "视频下方文字 {clip_captions:onoff}，语言 {language}。"
    ),
    "language_auto": "自动",
    "word_on": "开",
    "word_off": "关",
    "command_animate": "用一句话让照片动起来",
    "command_help": "使用说明",
    "command_voices": "/animate 可用的声音",
    "command_status": "查看排队位置",
    "command_cancel": "停止生成视频",
    "command_settings": "群设置（管理员）",
    "not_a_recording": "这不是录音。请附上语音消息或音频文件（MP3、OGG、WAV 或 M4A）。",
    "discord_voice_or_text": "录音（voice）和文字（text）只能选一个，不能同时给。",
    "discord_need_voice_or_text": "请加上一段录音（voice）或一句文字（text），让照片里的人说出来。",
    "discord_no_photo": "这条消息里没有照片。请在带图片的消息上使用 应用 → 让照片说话。",
    "discord_modal_title": "让这张照片动起来",
    "discord_modal_text_label": "要说什么？",
    "discord_modal_voice_label": "声音（可选，例如 zh-female）",
    "discord_cant_post_here": "我无法在这个频道发视频。请管理员允许我在这里发消息和附件。",
    "discord_context_menu": "让照片说话",
    "discord_status": "{who} 的视频：{line}",
    "discord_clip_caption": "{who}，你的视频来啦！",
    "channel_not_allowed": "在这个服务器上，我只在 {channels:list} 生成视频。",
    "discord_settings": "本服务器设置：频道：{channels}；声音：{voice}；画质：{quality}；{limit}；语言：{language}。",
    "discord_every_channel": "所有频道",
    "discord_per_hour": "每位成员每小时 {per_hour} 个视频",
    "discord_default_per_hour": "使用机器人默认的每人限额",
    "discord_help": (
        "使用方法：\n"
        "• 使用 /{animate_command} 并附上照片，再加一段录音（voice）或一句文字（text）。\n"
        "• 右键点击带照片的消息 → 应用 → 让照片说话，然后输入要说的话。\n"
        "• 用语音消息或音频文件回复一条带照片的消息。\n\n"
        "限制：录音最长 {max_audio_seconds:duration}，文字最多 {max_text_chars} 个字符。"
        "视频会发在同一个频道，带有「再来一次」和「删除」按钮；「取消」可以停止正在生成的视频。"
        "服务器管理员：/{settings_command}。"
    ),
    "discord_help_mention": (
        "使用方法：\n"
        "• 使用 /{animate_command} 并附上照片，再加一段录音（voice）或一句文字（text）。\n"
        "• 右键点击带照片的消息 → 应用 → 让照片说话，然后输入要说的话。\n"
        "• 用语音消息或音频文件回复一条带照片的消息，并在回复中 @ 我（其他消息我看不到）。\n\n"
        "限制：录音最长 {max_audio_seconds:duration}，文字最多 {max_text_chars} 个字符。"
        "视频会发在同一个频道，带有「再来一次」和「删除」按钮；「取消」可以停止正在生成的视频。"
        "服务器管理员：/{settings_command}。"
    ),
    "describe_animate": "让照片里的人说出一段录音或一句话",
    "describe_photo": "一张有人脸的照片（JPEG、PNG 或 WebP）",
    "describe_voice": "让照片说出或唱出的语音消息或音频文件",
    "describe_text": "代替录音、要朗读的一句话",
    "describe_voice_name": "语音合成的声音，例如 zh-female",
    "describe_quality": "fast（384 像素）、standard（512 像素）或 high（704 像素）",
    "describe_motion": "头部动作的幅度",
    "describe_help": "头像机器人使用说明",
    "describe_settings": "本服务器的头像机器人设置（管理员）",
    "describe_settings_show": "查看本服务器的头像机器人设置",
    "describe_settings_channels": "允许或移除机器人所在的频道；不设置频道即所有频道可用",
    "describe_settings_channel": "要允许或移除的频道",
    "describe_settings_allow": "True 允许机器人在此使用，False 移除该频道",
    "describe_settings_defaults": "本服务器默认的声音和画质",
    "describe_settings_user_limit": "本服务器每位成员每小时可生成的视频数",
    "describe_settings_per_hour": "每位成员每小时的视频数（0：使用机器人默认限额）",
    "describe_settings_language": "机器人在本服务器使用的语言（auto：跟随每位成员自己的语言）",
    "describe_language": "语言代码，如 en、zh-Hans 或 es；auto 表示跟随每位成员",
    "name_animate": "让照片说话",
    "name_help": "帮助",
    "name_settings": "头像设置",
}

# The local web page (avatarbot.web): its labels, by the page's own names after `web_`.
CATALOGUE.update(
    {
        "web_title": "让照片动起来",
        "web_intro": "选一张人脸照片，然后录音、上传或输入要说的话。",
        "web_photo": "照片",
        "web_use_example": "使用示例照片",
        "web_sound": "要说什么？",
        "web_tab_text": "输入文字",
        "web_tab_record": "录音",
        "web_tab_upload": "上传歌曲或录音",
        "web_text_placeholder": "你好！我是一张照片，现在我会说话了。",
        "web_voice": "声音",
        "web_record_start": "开始录音",
        "web_record_stop": "停止",
        "web_recording": "正在录音…",
        "web_recorded": "录好了。可以试听，或者重新录。",
        "web_no_microphone": "浏览器不允许使用麦克风。请上传录音或输入一句话。",
        "web_quality": "画质",
        "web_motion": "头部动作",
        "web_motion_still": "静止",
        "web_motion_lively": "活泼",
        "web_submit": "生成",
        "web_sending": "正在发送…",
        "web_download": "下载",
        "web_done": "视频来啦！",
        "web_finishing": "视频即将完成…",
        "web_need_photo": "请先选择一张照片。",
        "web_need_sound": "请录一段音、选择一段录音，或输入一句要说的话。",
        "web_password": "密码",
        "web_sign_in": "登录",
        "web_wrong_password": "密码不对。",
        "web_sign_in_first": "请先输入页面密码登录。",
        "web_offline": "连不上服务器。`avatarbot web` 还在运行吗？",
        "web_quality_fast": "快速（384 像素）",
        "web_quality_standard": "标准（512 像素）",
        "web_quality_high": "高清（704 像素）",
    }
)
